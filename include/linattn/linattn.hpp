// Umbrella header: everything in linattn. Include the individual headers to compile less.
#pragma once

#include "linattn/core/check.hpp"
#include "linattn/core/math.hpp"
#include "linattn/core/norm.hpp"
#include "linattn/core/state.hpp"
#include "linattn/core/tensor.hpp"
#include "linattn/core/threading.hpp"
#include "linattn/io/safetensors.hpp"
#include "linattn/ops/gla.hpp"
#include "linattn/ops/gsa.hpp"
#include "linattn/ops/hgrn.hpp"
#include "linattn/ops/ternary.hpp"
#include "linattn/nn/bitlinear.hpp"
#include "linattn/nn/glu.hpp"
#include "linattn/nn/mlgru.hpp"
