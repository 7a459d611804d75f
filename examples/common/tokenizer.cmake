# SentencePiece for the examples' text support, and the library linattn_examples_tokenizer
# (examples/common/tokenizer.{hpp,cpp}). Included from examples/common/CMakeLists.txt and from
# tests/CMakeLists.txt (the tests are configured first), hence the guard.
#
# Defines, only when SentencePiece is found (`if(TARGET linattn_examples_tokenizer)` tells):
#   linattn_examples_tokenizer   the Tokenizer class; PUBLIC LINATTN_HAVE_SENTENCEPIECE=1
#   linattn::sentencepiece       IMPORTED: the runtime library
#   linattn::sentencepiece_train IMPORTED: the trainer (tests train a tiny tokenizer), if present
# Otherwise it says that the examples build without text support (token ids only).
include_guard(GLOBAL)

find_path(LINATTN_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
find_library(LINATTN_SENTENCEPIECE_LIBRARY sentencepiece)
find_library(LINATTN_SENTENCEPIECE_TRAIN_LIBRARY sentencepiece_train)

if(LINATTN_SENTENCEPIECE_INCLUDE_DIR AND LINATTN_SENTENCEPIECE_LIBRARY)
  add_library(linattn::sentencepiece UNKNOWN IMPORTED GLOBAL)
  set_target_properties(linattn::sentencepiece PROPERTIES
    IMPORTED_LOCATION "${LINATTN_SENTENCEPIECE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${LINATTN_SENTENCEPIECE_INCLUDE_DIR}")
  if(LINATTN_SENTENCEPIECE_TRAIN_LIBRARY)
    add_library(linattn::sentencepiece_train UNKNOWN IMPORTED GLOBAL)
    set_target_properties(linattn::sentencepiece_train PROPERTIES
      IMPORTED_LOCATION "${LINATTN_SENTENCEPIECE_TRAIN_LIBRARY}"
      INTERFACE_LINK_LIBRARIES linattn::sentencepiece)
  endif()
  add_library(linattn_examples_tokenizer STATIC ${CMAKE_CURRENT_LIST_DIR}/tokenizer.cpp)
  # Consumers include "common/tokenizer.hpp" (examples/ on the path), as the examples do.
  target_include_directories(linattn_examples_tokenizer PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
  target_compile_features(linattn_examples_tokenizer PUBLIC cxx_std_20)
  target_link_libraries(linattn_examples_tokenizer PRIVATE linattn::sentencepiece linattn_dev)
  # PUBLIC: programs linking it compile their text paths (#if LINATTN_HAVE_SENTENCEPIECE).
  target_compile_definitions(linattn_examples_tokenizer PUBLIC LINATTN_HAVE_SENTENCEPIECE=1)
  message(STATUS "linattn examples: SentencePiece found (${LINATTN_SENTENCEPIECE_LIBRARY}): text prompts supported")
else()
  message(STATUS "linattn examples: SentencePiece not found (Debian: libsentencepiece-dev): "
                 "examples build without text support (token ids only)")
endif()
