// Text <-> token ids for the example programs: a thin wrapper over SentencePiece, the tokenizer
// format (tokenizer.model) of the Llama-style vocabularies that the fla and MMfreeLM checkpoints
// ship with.
//
// SentencePiece stays out of this header (pimpl), so code that includes it does not need the
// SentencePiece headers. The library target linattn_examples_tokenizer exists only when CMake
// found SentencePiece (examples/common/tokenizer.cmake); it then carries the definition
// LINATTN_HAVE_SENTENCEPIECE=1, and programs without it work on token ids only.
//
// Errors: a tokenizer.model that cannot be loaded -> std::runtime_error naming the path and
// SentencePiece's reason; an id outside the vocabulary -> std::invalid_argument naming the id.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace linattn::examples {

class Tokenizer {
 public:
  // `model_dir`/tokenizer.model if that file exists (std::nullopt if it does not); throws
  // std::runtime_error naming the file if it exists but cannot be loaded.
  static std::optional<Tokenizer> open_if_present(const std::filesystem::path& model_dir);
  // Loads a SentencePiece model file; throws std::runtime_error naming the path on failure.
  static Tokenizer load(const std::filesystem::path& model_file);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids of `text`, with the bos id first when add_bos (as HF's Llama tokenizer does by default).
  // Throws std::invalid_argument if add_bos and the vocabulary has no bos piece.
  std::vector<std::int64_t> encode(std::string_view text, bool add_bos) const;
  // The text of `ids`; control ids (bos, eos) decode to nothing, unknown ids to " ⁇ ".
  std::string decode(std::span<const std::int64_t> ids) const;

  std::int64_t vocab_size() const;
  std::int64_t bos_id() const;  // -1 when the vocabulary has none
  std::int64_t eos_id() const;  // -1 when the vocabulary has none
  std::int64_t unk_id() const;
  std::string piece(std::int64_t id) const;  // the piece's spelling, e.g. "▁the" or "<0x0A>"
  const std::filesystem::path& path() const;
  // Whether decoding applies the model's denormalisation rules (a rule set rewriting the decoded
  // text as a whole; rare, Llama-style tokenizers have none). Stream is exact either way, but
  // then decodes the whole sequence at each push.
  bool denormalizes() const;

  // Incremental detokenisation for printing a generation as it runs. push() returns only the
  // text that the new id completes, holding back trailing byte-fallback pieces that do not yet
  // form a complete UTF-8 character; finish() returns whatever is still held back. The
  // concatenation of every push() and finish() equals decode(context + generated ids) after the
  // text of `context` (the prompt, whose text is not emitted but decides whether the first
  // generated word starts with a space): SentencePiece's handling of leading spaces and of byte
  // pieces is exactly decode()'s.
  //
  // Cost: O(1) amortised per push, not a decode of the whole sequence. Each push decodes only the
  // ids since the last "anchor": a position where SentencePiece's decoding of what follows no
  // longer depends on what precedes it — after a non-byte piece, or after a byte piece that
  // completes a character, once some text has been produced. A window that starts there is
  // decoded behind one fixed ordinary piece (so that its first piece does not lose a leading
  // space as the first piece of a text does), and the text of the pieces after it is exactly
  // their text in the whole decode. Two cases keep a longer window: while the text is still
  // empty (only control pieces and spaces so far), and for a tokenizer with a denormalisation
  // rule set (rewriting across piece boundaries): that one decodes the whole sequence each push.
  class Stream {
   public:
    explicit Stream(const Tokenizer& tokenizer, std::span<const std::int64_t> context = {});
    std::string push(std::int64_t id);
    std::string finish();
    // The generated ids so far (without the context).
    std::span<const std::int64_t> generated() const {
      return std::span<const std::int64_t>(ids_).subspan(context_size_);
    }
    // Ids this stream has handed to SentencePiece so far, construction included: its cost, which
    // the tests bound.
    std::size_t decoded_ids() const { return decoded_ids_; }

   private:
    // Decodes the window [start_, n_ids), returns its text beyond shown_, and moves the anchor.
    std::string emit(std::size_t n_ids);
    // How many of ids_ decode to complete text: all but a trailing run of byte pieces that is an
    // unfinished UTF-8 sequence.
    std::size_t stable_prefix() const;

    const Tokenizer* tok_;
    std::vector<std::int64_t> ids_;  // context, then generated ids
    std::size_t context_size_;
    std::size_t start_ = 0;          // the window: ids_[start_, ...) are decoded at each push
    bool anchored_ = false;          // decoded behind the anchor piece (else from the very start)
    bool text_before_ = false;       // the text of ids_[0, start_) is not empty
    std::size_t shown_ = 0;          // bytes of the window's text already accounted for
    std::size_t decoded_ids_ = 0;
  };

  Stream stream(std::span<const std::int64_t> context = {}) const { return Stream(*this, context); }

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  void check_id(std::int64_t id) const;
  // The byte value of a byte-fallback piece "<0xAB>", or -1 for any other piece.
  int byte_value(std::int64_t id) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace linattn::examples
