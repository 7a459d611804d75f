// See fuzz_load.hpp.
#include "fuzz_load.hpp"

#include <cstdint>
#include <stdexcept>
#include <variant>
#include <vector>

#include "linattn/models/any.hpp"

namespace linattn::fuzz {

void load_and_run(const std::filesystem::path& dir) {
  try {
    const io::Checkpoint ckpt(dir);
    models::LoadOptions load;
    load.threads = Threads{1};
    const models::AnyModel any = models::load_model(ckpt, load);
    std::visit(
        [](const auto& model) {
          const index_t V = model.vocab_size();
          nn::RunOptions run;
          run.threads = Threads{1};
          const std::vector<std::int64_t> ids = {0, V - 1};
          auto cache = model.new_cache();
          Array<float, 2> logits(Shape<2>{1, V});
          model.forward(std::span<const std::int64_t>(ids.data(), 1), cache, logits.view(), run);
          auto* c = &cache;
          model.step(std::span<const std::int64_t>(ids.data() + 1, 1), std::span<decltype(c) const>(&c, 1), logits.view(),
                     run);
        },
        any);
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace linattn::fuzz
