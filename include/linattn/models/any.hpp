// Any of the three families, chosen by config.json's model_type.
#pragma once

#include <filesystem>
#include <variant>

#include "linattn/models/gla.hpp"
#include "linattn/models/gsa.hpp"
#include "linattn/models/hgrn_bit.hpp"

namespace linattn::models {

using AnyModel = std::variant<GLAModel, GSAModel, HGRNBitModel>;

inline AnyModel load_model(const io::Checkpoint& ckpt, const LoadOptions& options = {}) {
  const auto type = ckpt.require<std::string>("model_type");
  if (type == "gla") return load_gla(ckpt, options);
  if (type == "gsa") return load_gsa(ckpt, options);
  if (type == "hgrn_bit") return load_hgrn_bit(ckpt, options);
  ckpt.fail("config.json model_type \"" + type + "\" is not one of: gla, gsa, hgrn_bit");
}

}  // namespace linattn::models
