// linattn-conformance: checks linattn against golden safetensors files (tests/data/GOLDEN-README.md):
// op files, and the golden.safetensors of model folders (kinds model.*: the whole model).
//
//   linattn-conformance FILE.safetensors...
//
// For every file: open it, read metadata "kind", hand the file to that kind's runner
// (runners.hpp), which runs every form of the op in float32 and prints one line per form
//   <case> <form> max_abs=<..> max_rel=<..> PASS|FAIL  [per-tensor errors, tolerance]
// on stdout. A file that cannot be checked (unreadable, not safetensors, unknown kind, missing or
// mis-shaped tensor, library exception) prints "FILE: error: <message>" on stderr.
// Exit status: 0 all forms of all files passed; 1 any FAIL or error; 2 usage error.
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "common.hpp"
#include "linattn/io/safetensors.hpp"
#include "runners.hpp"

namespace {

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: linattn-conformance FILE.safetensors...\n"
               "Checks linattn's kernels against golden files; one line per (file, form).\n"
               "Known kinds: %s\n"
               "Exit status: 0 all PASS, 1 any FAIL or error, 2 usage error.\n",
               conformance::known_kinds().c_str());
}

// linattn::io messages start with "linattn::io: <path>: "; the line already names the file.
std::string without_io_prefix(std::string msg, const std::string& path) {
  const std::string prefix = "linattn::io: " + path + ": ";
  if (msg.rfind(prefix, 0) == 0) msg.erase(0, prefix.size());
  return msg;
}

enum class Outcome { pass, fail, error };

Outcome check_file(const std::string& path) {
  const auto error = [&](const std::string& what) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s\n", path.c_str(), without_io_prefix(what, path).c_str());
    return Outcome::error;
  };
  try {
    const linattn::io::SafeTensorsFile file(path);
    const auto kind = file.metadata_value("kind");
    if (!kind) return error("no 'kind' in the metadata (known: " + conformance::known_kinds() + ")");
    const conformance::RunnerEntry* runner = conformance::find_runner(*kind);
    if (!runner) return error("unknown op kind '" + *kind + "' (known: " + conformance::known_kinds() + ")");
    const conformance::Case c{file, conformance::case_name(file), conformance::tolerance_from_metadata(file)};
    return runner->run(c) ? Outcome::pass : Outcome::fail;
  } catch (const std::exception& e) {
    return error(e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (argc == 2 && (std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help")) {
    usage(stdout);
    return 0;
  }
  int passed = 0, failed = 0, errors = 0;
  for (int i = 1; i < argc; ++i) {
    switch (check_file(argv[i])) {
      case Outcome::pass: ++passed; break;
      case Outcome::fail: ++failed; break;
      case Outcome::error: ++errors; break;
    }
  }
  std::fflush(stdout);
  std::fprintf(stderr, "linattn-conformance: %d file(s): %d passed, %d failed, %d error(s)\n", argc - 1, passed,
               failed, errors);
  return failed + errors == 0 ? 0 : 1;
}
