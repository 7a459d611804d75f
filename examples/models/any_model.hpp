// Any of the three families, chosen by config.json's model_type.
#pragma once

#include <filesystem>
#include <variant>

#include "models/gla_lm.hpp"
#include "models/gsa_lm.hpp"
#include "models/hgrn_bit_lm.hpp"

namespace linattn::examples {

using AnyModel = std::variant<GLAModel, GSAModel, HGRNBitModel>;

inline AnyModel load_model(const io::Checkpoint& ckpt, const LoadOptions& options = {}) {
  const auto type = ckpt.require<std::string>("model_type");
  if (type == "gla") return load_gla(ckpt, options);
  if (type == "gsa") return load_gsa(ckpt, options);
  if (type == "hgrn_bit") return load_hgrn_bit(ckpt, options);
  ckpt.fail("config.json model_type \"" + type + "\" is not one of: gla, gsa, hgrn_bit");
}

}  // namespace linattn::examples
