// linattn-generate: load a Hugging Face GLA, GSA or MatMul-free LM checkpoint and generate.
//
//   linattn-generate --model DIR (--prompt TEXT | --ids LIST)... [--max-new-tokens N]
//                    [--temperature T] [--top-k K] [--top-p P] [--seed S] [--threads N]
//                    [--packing 2|1.6] [--form auto|chunk|fused_chunk|recurrent] [--reference]
//                    [--dump-logits FILE.safetensors]
//
// Text prompts need a SentencePiece tokenizer.model in DIR. Several --prompt/--ids make a
// batch. With --ids the generated ids go to stdout, one comma-separated line per prompt; text
// is streamed to stdout as it is generated. Statistics and progress go to stderr.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "generate/id_list.hpp"
#include "generate/options.hpp"
#include "linattn/models/any.hpp"
#if LINATTN_HAVE_SENTENCEPIECE
#include "common/tokenizer.hpp"
#endif

namespace {

using namespace linattn;
using Args = examples::GenerateOptions;

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}


int run(const Args& args) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  if (args.threads > linattn::max_threads())
    std::fprintf(stderr, "linattn-generate: --threads %d is more than the %d cores this process may run on; using %d\n",
                 args.threads, linattn::max_threads(), linattn::max_threads());
  io::Checkpoint ckpt(args.model);
  models::LoadOptions load;
  load.threads = Threads{args.threads};
  load.packing = args.packing;
  load.dense_reference = args.reference;
  if (::isatty(STDERR_FILENO))  // a progress line that rewrites itself; logs get none
    load.progress = [](index_t done, index_t total) {
      std::cerr << "\rlinattn-generate: loading layer " << done << "/" << total << (done == total ? "\n" : "") << std::flush;
    };
  models::AnyModel model = models::load_model(ckpt, load);
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto type = ckpt.require<std::string>("model_type");
  std::cerr << "linattn-generate: " << type << " model from " << args.model << " loaded in " << load_s << " s\n";

  const index_t model_vocab = std::visit([](const auto& m) { return m.vocab_size(); }, model);
  for (const auto& ids : args.ids)
    for (const std::int64_t id : ids)
      if (id < 0 || id >= model_vocab)
        throw std::invalid_argument("--ids: token id " + std::to_string(id) + " is outside the model's vocabulary [0, " +
                                    std::to_string(model_vocab) + ")");

  std::vector<std::vector<std::int64_t>> prompts = args.ids;
#if LINATTN_HAVE_SENTENCEPIECE
  // Text prompts need the tokenizer, and a broken one is an error. An --ids run uses it only to
  // sample among its ids (below), so a tokenizer.model that cannot be loaded is a note, not a
  // failure: that run works on ids alone.
  std::optional<examples::Tokenizer> tokenizer;
  if (!args.prompts.empty()) {
    tokenizer = examples::Tokenizer::open_if_present(args.model);
    if (!tokenizer) throw std::runtime_error(args.model + " has no tokenizer.model: give --ids instead of --prompt");
    for (const auto& p : args.prompts) prompts.push_back(tokenizer->encode(p, /*add_bos=*/true));
  } else {
    try {
      tokenizer = examples::Tokenizer::open_if_present(args.model);
    } catch (const std::exception& e) {
      std::cerr << "linattn-generate: note: ignoring the tokenizer (" << e.what() << "); --ids do not need it\n";
    }
  }
#else
  if (!args.prompts.empty())
    throw std::runtime_error("this build has no SentencePiece support: give --ids instead of --prompt");
#endif

  nn::RunOptions run;
  run.form = args.form;
  run.threads = Threads{args.threads};
  run.arithmetic = args.reference ? nn::Arithmetic::reference : nn::Arithmetic::integer;

  if (!args.dump_logits.empty()) {
    std::visit([&](const auto& m) {
      const auto& ids = prompts.front();
      const index_t T = static_cast<index_t>(ids.size());
      Array<float, 2> logits(Shape<2>{T, m.vocab_size()});
      auto cache = m.new_cache();
      m.forward(std::span<const std::int64_t>(ids), cache, logits.view(), run);
      io::SafeTensorsWriter w;
      w.add("logits", logits.cview());
      w.write(args.dump_logits);
    }, model);
    std::cerr << "linattn-generate: wrote logits [" << prompts.front().size() << ", vocab] to " << args.dump_logits << "\n";
    return 0;
  }

  lm::GenerationOptions gen;
  gen.max_new_tokens = args.max_new_tokens;
  gen.sampling = args.sampling;
  gen.run = run;
  // eos_token_id: an id or a list, each an integer of the vocabulary (linattn/models/common.hpp).
  gen.stop_ids = models::stop_ids(ckpt, std::visit([](const auto& m) { return m.vocab_size(); }, model));

#if LINATTN_HAVE_SENTENCEPIECE
  if (tokenizer) {
    if (tokenizer->vocab_size() < model_vocab) {
      gen.sample_vocab = tokenizer->vocab_size();
      std::cerr << "linattn-generate: sampling among the tokenizer's " << tokenizer->vocab_size() << " of the model's "
                << model_vocab << " ids\n";
    }
  }
#endif
  const bool stream = prompts.size() == 1;
  bool first = true;
#if LINATTN_HAVE_SENTENCEPIECE
  std::optional<examples::Tokenizer::Stream> text;
  if (stream && tokenizer && args.ids.empty()) {
    text.emplace(*tokenizer, std::span<const std::int64_t>(prompts.front()));
    std::cout << args.prompts.front() << std::flush;
  }
#endif
  const lm::GenerationResult result = std::visit(
      [&](const auto& m) {
        return lm::generate(m, prompts, gen, [&](std::size_t, std::int64_t id) {
          if (!stream) return;
#if LINATTN_HAVE_SENTENCEPIECE
          if (text) {
            std::cout << text->push(id) << std::flush;
            return;
          }
#endif
          std::cout << (first ? "" : ",") << id << std::flush;
          first = false;
        });
      },
      model);
  if (stream) {
#if LINATTN_HAVE_SENTENCEPIECE
    if (text) std::cout << text->finish();
#endif
    std::cout << std::endl;  // before the statistics on stderr
  } else {
    for (std::size_t p = 0; p < prompts.size(); ++p) {
#if LINATTN_HAVE_SENTENCEPIECE
      if (tokenizer && args.ids.empty()) {
        std::vector<std::int64_t> all = prompts[p];
        all.insert(all.end(), result.tokens[p].begin(), result.tokens[p].end());
        std::cout << tokenizer->decode(all) << "\n";
        continue;
      }
#endif
      std::cout << examples::format_ids(result.tokens[p]) << "\n";
    }
  }
  const auto& s = result.stats;
  std::fprintf(stderr,
               "linattn-generate: prefill %lld tokens in %.3f s (%.1f tokens/s), decode %lld tokens in %.3f s "
               "(%.1f tokens/s), peak RSS %.1f MiB\n",
               static_cast<long long>(s.prompt_tokens), s.prefill_seconds, s.prefill_tokens_per_second(),
               static_cast<long long>(s.decode_tokens), s.decode_seconds, s.decode_tokens_per_second(), peak_rss_mib());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = examples::parse_generate_options(argc, argv);
  } catch (const examples::UsageError& e) {
    std::cerr << "linattn-generate: " << e.what() << "\n" << examples::kGenerateUsage;
    return 2;
  }
  if (args.help) {
    std::cout << examples::kGenerateUsage;
    return 0;
  }
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::cerr << "linattn-generate: error: " << e.what() << "\n";
    return 1;
  }
}
