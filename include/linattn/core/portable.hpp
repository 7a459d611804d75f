// Which code paths a translation unit compiles, and the names that keep differently-compiled
// copies apart.
//
// LINATTN_PORTABLE (define it before the first linattn header, or -DLINATTN_PORTABLE): the
// recurrence core (ops/gated_recurrence.hpp, ops/recurrence/) takes its plain C++ loops instead
// of the GCC/Clang vector-extension tiles, and the ternary kernels their scalar backend instead
// of the AVX2/AVX-512 intrinsics. The results agree with the vector paths to rounding (ternary:
// bit for bit); tests/ops/test_portable.cpp builds one translation unit this way and compares.
//
// Kernels whose machine code depends on these choices and on the target ISA live in an inline
// namespace named after both (detail::rec_<path>_<target>, ternary::isa_<backend>), so two
// translation units built with different -m flags or LINATTN_PORTABLE can be linked into one
// program: their kernels have different symbols and the linker cannot substitute one for the
// other. Only the kernels are so named: the ops above them (gla::chunk, ...) are ordinary inline
// templates, one per program, so give one -m flag set to the translation units that call an op.
#pragma once

#if defined(__GNUC__) && !defined(LINATTN_PORTABLE)
#define LINATTN_RECURRENCE_VECTOR 1  // GCC/Clang vector extensions (512-bit vectors, lowered to the target)
#define LINATTN_DETAIL_RECURRENCE_PATH vector
#else
#define LINATTN_DETAIL_RECURRENCE_PATH portable
#endif

#if defined(__AVX512F__)
#define LINATTN_DETAIL_TARGET avx512
#elif defined(__AVX2__)
#define LINATTN_DETAIL_TARGET avx2
#else
#define LINATTN_DETAIL_TARGET generic
#endif

#define LINATTN_DETAIL_CAT3(a, b, c) a##_##b##_##c
#define LINATTN_DETAIL_XCAT3(a, b, c) LINATTN_DETAIL_CAT3(a, b, c)
// The recurrence core's inline namespace: rec_vector_avx512, rec_portable_generic, ...
#define LINATTN_RECURRENCE_ISA LINATTN_DETAIL_XCAT3(rec, LINATTN_DETAIL_RECURRENCE_PATH, LINATTN_DETAIL_TARGET)
