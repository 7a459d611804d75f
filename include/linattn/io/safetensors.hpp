// Reading and writing safetensors files (https://github.com/huggingface/safetensors).
//
// Layout of a file:
//   [8 bytes]  N, little-endian u64: length of the JSON header
//   [N bytes]  JSON object: name -> {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
//              plus an optional "__metadata__": {string: string}
//   [rest]     data section; a tensor's bytes are data[begin, end), row-major, little-endian
//
// SafeTensorsFile memory-maps the file and validates the whole header up front, so that every
// later accessor can trust the offsets: a malformed or truncated file fails in the constructor
// with FormatError, never with an out-of-bounds read later on. The golden reference data of this
// project is stored in this format (see tests/data/GOLDEN-README.md).
//
// Error policy:
//   * the file cannot be opened / mapped          -> std::system_error (a std::runtime_error),
//                                                    message names the path and the errno text
//   * anything wrong with the file's contents,
//     or a read that does not fit the tensor      -> linattn::io::FormatError (a std::runtime_error)
//     (unsupported conversion, wrong rank/shape,
//     value out of the target type's range)
//   * no tensor of that name                      -> std::out_of_range
//   * misuse of SafeTensorsWriter                 -> std::invalid_argument
//   * writer cannot write the output file         -> std::system_error
// Every message starts with "linattn::io: <path>:" and names the tensor where one is involved.
//
// The parts: safetensors/dtype.hpp (element types, half conversions), safetensors/mapping.hpp
// (error helpers, bounded JSON parsing, the file mapping), safetensors/reader.hpp
// (SafeTensorsFile), safetensors/writer.hpp (SafeTensorsWriter).
#pragma once

#include "linattn/io/safetensors/dtype.hpp"
#include "linattn/io/safetensors/mapping.hpp"
#include "linattn/io/safetensors/reader.hpp"
#include "linattn/io/safetensors/writer.hpp"
