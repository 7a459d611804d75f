// libFuzzer harness: linattn::io::SafeTensorsFile on arbitrary bytes. The input is written to a
// file (the reader maps a path), opened, and every tensor read as float (every conversion the
// reader has), as int64 and as bool, and every metadata value parsed as JSON. Documented errors
// (FormatError, std::system_error, std::out_of_range for a missing name) are expected; anything
// else escaping, a crash, a sanitizer report, a leak or a timeout is a finding.
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "fuzz_support.hpp"
#include "linattn/io/safetensors.hpp"

namespace {

volatile float g_sink;  // keeps the reads from being optimised away

template <class T>
void read_all(const linattn::io::SafeTensorsFile& f, const std::string& name) {
  try {
    const auto v = f.template read<T>(name);
    if (!v.empty()) g_sink = static_cast<float>(v[v.size() / 2]);
  } catch (const linattn::io::FormatError&) {  // a conversion this dtype does not allow
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto path = linattn::fuzz::scratch_dir() / "input.safetensors";
  linattn::fuzz::write_file(path, linattn::fuzz::as_text(data, size));
  try {
    const linattn::io::SafeTensorsFile f(path);
    for (const auto& name : f.names()) {
      const auto& info = f.info(name);
      g_sink = static_cast<float>(info.numel());
      read_all<float>(f, name);
      read_all<double>(f, name);
      read_all<std::int64_t>(f, name);
      read_all<bool>(f, name);
    }
    for (const auto& [key, value] : f.metadata()) {
      try {
        (void)f.metadata_json(key);
      } catch (const linattn::io::FormatError&) {
      }
    }
    (void)f.info("no such tensor");
  } catch (const linattn::io::FormatError&) {
  } catch (const std::out_of_range&) {
  } catch (const std::system_error&) {
  }
  return 0;
}
