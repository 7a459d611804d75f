// linattn._core.Model: a GLA, GSA or MatMul-free LM loaded from a Hugging Face checkpoint
// folder (linattn/models/any.hpp), its logits and lm::generate with the CLI's sampling options.
// A translation unit of its own: models/ (nlohmann-json, the loaders) is the heaviest include.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "linattn/models/any.hpp"

namespace py = pybind11;

namespace {

using linattn::index_t;

linattn::ternary::Packing parse_packing(const std::string& s) {
  if (s == "2") return linattn::ternary::Packing::bits2;
  if (s == "1.6") return linattn::ternary::Packing::base3;
  throw std::invalid_argument("linattn.load: packing '" + s + "' is not one of 2, 1.6");
}

std::optional<linattn::Form> parse_run_form(const std::string& s) {
  if (s == "auto") return std::nullopt;
  if (s == "recurrent") return linattn::Form::recurrent;
  if (s == "chunk") return linattn::Form::chunk;
  if (s == "fused_chunk") return linattn::Form::fused_chunk;
  throw std::invalid_argument("linattn: form '" + s + "' is not one of auto, recurrent, chunk, fused_chunk");
}

// The checkpoint stays open beside the model: float weights are used in place from its mapping.
class Model {
 public:
  Model(const std::string& path, int threads, const std::string& packing)
      : ckpt_(std::make_unique<linattn::io::Checkpoint>(path)) {
    linattn::models::LoadOptions load;
    load.threads = linattn::Threads{threads};
    load.packing = parse_packing(packing);
    py::gil_scoped_release release;
    model_.emplace(linattn::models::load_model(*ckpt_, load));
    type_ = ckpt_->require<std::string>("model_type");
    vocab_ = std::visit([](const auto& m) { return m.vocab_size(); }, *model_);
    stop_ids_ = linattn::models::stop_ids(*ckpt_, vocab_);
  }

  const std::string& model_type() const { return type_; }
  index_t vocab_size() const { return vocab_; }
  const std::vector<std::int64_t>& stop_ids() const { return stop_ids_; }

  // Logits [T, vocab] of every position of one sequence, from an empty cache.
  py::array_t<float> logits(const std::vector<std::int64_t>& ids, const std::string& form, int threads) const {
    check_ids(ids, "ids");
    linattn::nn::RunOptions run;
    run.form = parse_run_form(form);
    run.threads = linattn::Threads{threads};
    const auto T = static_cast<index_t>(ids.size());
    py::array_t<float> out(std::vector<py::ssize_t>{T, vocab_});
    float* data = out.mutable_data();
    {
      py::gil_scoped_release release;
      std::visit([&](const auto& m) {
        auto cache = m.new_cache();
        m.forward(std::span<const std::int64_t>(ids), cache, linattn::TensorView<float, 2>(data, {T, vocab_}), run);
      }, *model_);
    }
    return out;
  }

  // Generated ids of each prompt; on_token(prompt index, id) as each is chosen (with the GIL).
  std::vector<std::vector<std::int64_t>> generate(const std::vector<std::vector<std::int64_t>>& prompts,
                                                  index_t max_new_tokens, float temperature, int top_k, float top_p,
                                                  std::uint64_t seed, bool stop_at_eos, index_t sample_vocab,
                                                  const std::string& form, int threads,
                                                  const std::function<void(std::size_t, std::int64_t)>& on_token) const {
    for (std::size_t p = 0; p < prompts.size(); ++p) check_ids(prompts[p], "prompt " + std::to_string(p));
    linattn::lm::GenerationOptions gen;
    gen.max_new_tokens = max_new_tokens;
    gen.sampling = {temperature, top_k, top_p, seed};
    if (stop_at_eos) gen.stop_ids = stop_ids_;
    gen.sample_vocab = sample_vocab;
    gen.run.form = parse_run_form(form);
    gen.run.threads = linattn::Threads{threads};
    linattn::lm::TokenCallback callback;
    if (on_token)
      callback = [&](std::size_t b, std::int64_t id) {
        py::gil_scoped_acquire acquire;
        on_token(b, id);
      };
    py::gil_scoped_release release;
    return std::visit([&](const auto& m) { return linattn::lm::generate(m, prompts, gen, callback).tokens; }, *model_);
  }

 private:
  void check_ids(const std::vector<std::int64_t>& ids, const std::string& what) const {
    if (ids.empty()) throw std::invalid_argument("linattn: " + what + " is empty");
    for (std::int64_t id : ids)
      if (id < 0 || id >= vocab_)
        throw std::invalid_argument("linattn: " + what + ": token id " + std::to_string(id) +
                                    " is outside the model's vocabulary [0, " + std::to_string(vocab_) + ")");
  }

  std::unique_ptr<linattn::io::Checkpoint> ckpt_;
  std::optional<linattn::models::AnyModel> model_;
  std::string type_;
  index_t vocab_ = 0;
  std::vector<std::int64_t> stop_ids_;
};

}  // namespace

void bind_models(py::module_& m) {
  py::class_<Model>(m, "Model", "a causal LM from a Hugging Face checkpoint folder (gla, gsa, hgrn_bit)")
      .def(py::init<const std::string&, int, const std::string&>(), py::arg("path"), py::arg("threads"),
           py::arg("packing"))
      .def_property_readonly("model_type", &Model::model_type)
      .def_property_readonly("vocab_size", &Model::vocab_size)
      .def_property_readonly("stop_ids", &Model::stop_ids)
      .def("logits", &Model::logits, py::arg("ids"), py::arg("form"), py::arg("threads"))
      .def("generate", &Model::generate, py::arg("prompts"), py::arg("max_new_tokens"), py::arg("temperature"),
           py::arg("top_k"), py::arg("top_p"), py::arg("seed"), py::arg("stop_at_eos"), py::arg("sample_vocab"),
           py::arg("form"), py::arg("threads"), py::arg("on_token"));
}
