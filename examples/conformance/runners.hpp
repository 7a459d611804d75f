// The table of golden-file kinds linattn-conformance can check. To support another op, write
// <op>_runner.hpp (a `bool run_<op>(const Case&)` that prints one report() line per form) and
// add its row here; nothing else changes.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "bitlinear_runner.hpp"
#include "common.hpp"
#include "gla_runner.hpp"
#include "grad_runner.hpp"
#include "gsa_runner.hpp"
#include "hgrn_runner.hpp"
#include "model_runner.hpp"

namespace conformance {

struct RunnerEntry {
  std::string_view kind;  // metadata "kind"
  Runner run;
};

inline constexpr std::array kRunners{
    RunnerEntry{"op.gla", &run_gla},
    RunnerEntry{"op.gla_varlen", &run_gla_varlen},
    RunnerEntry{"op.gsa", &run_gsa},
    RunnerEntry{"op.gsa_varlen", &run_gsa},
    RunnerEntry{"op.hgrn", &run_hgrn},
    RunnerEntry{"op.hgrn_varlen", &run_hgrn},
    RunnerEntry{"op.bitlinear", &run_bitlinear},
    RunnerEntry{"grad.gla", &run_grad_gla},
    RunnerEntry{"grad.gla_varlen", &run_grad_gla},
    RunnerEntry{"grad.gsa", &run_grad_gsa},
    RunnerEntry{"grad.gsa_varlen", &run_grad_gsa},
    RunnerEntry{"grad.hgrn", &run_grad_hgrn},
    RunnerEntry{"grad.hgrn_varlen", &run_grad_hgrn},
    RunnerEntry{"grad.bitlinear", &run_grad_bitlinear},
    RunnerEntry{"model.gla", &run_model},
    RunnerEntry{"model.gsa", &run_model},
    RunnerEntry{"model.hgrn_bit", &run_model},
};

inline const RunnerEntry* find_runner(std::string_view kind) {
  for (const RunnerEntry& e : kRunners)
    if (e.kind == kind) return &e;
  return nullptr;
}

// "op.gla, op.gla_varlen"
inline std::string known_kinds() {
  std::string s;
  for (const RunnerEntry& e : kRunners) (s += s.empty() ? "" : ", ") += e.kind;
  return s;
}

}  // namespace conformance
