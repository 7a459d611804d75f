// The forms a recurrence can be run in: one vocabulary for the ops (gla, gsa, hgrn) and the
// layers (nn::RunOptions::form).
//
//   recurrent    token by token, the state tile in registers (the reference form)
//   chunk        matrix products over chunks of Options::chunk_size tokens (the training form:
//                its chunk states are what the backward reads)
//   fused_chunk  chunks of 2 tokens, the state in registers, never stored (GLA, GSA: the fastest
//                prefill on a CPU)
//
// `Form` is the run-time choice (a layer's option, the CLI's --form); the tags name a form in
// the type, for the ops' generic entry point `forward(form::chunk, ...)`, where a form an op
// does not have (form::fused_chunk for HGRN) is a compile error that says so.
#pragma once

#include <type_traits>

namespace linattn {

enum class Form { recurrent, chunk, fused_chunk };

namespace form {
struct recurrent_t {
  static constexpr Form value = Form::recurrent;
};
struct chunk_t {
  static constexpr Form value = Form::chunk;
};
struct fused_chunk_t {
  static constexpr Form value = Form::fused_chunk;
};
inline constexpr recurrent_t recurrent{};
inline constexpr chunk_t chunk{};
inline constexpr fused_chunk_t fused_chunk{};

// Whether F is one of the tags above (the ops' forward(F, ...) dispatch on it).
template <class F>
inline constexpr bool is_tag_v = std::is_same_v<F, recurrent_t> || std::is_same_v<F, chunk_t> ||
                                 std::is_same_v<F, fused_chunk_t>;
}  // namespace form

inline constexpr const char* form_name(Form f) {
  return f == Form::recurrent ? "recurrent" : f == Form::chunk ? "chunk" : "fused_chunk";
}

}  // namespace linattn
