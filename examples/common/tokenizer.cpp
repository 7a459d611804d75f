// See tokenizer.hpp. Built only when CMake found SentencePiece (examples/common/tokenizer.cmake).
#include "common/tokenizer.hpp"

#include <stdexcept>
#include <string>
#include <utility>

#include <sentencepiece_processor.h>

namespace linattn::examples {

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  std::filesystem::path path;
  std::vector<std::int16_t> byte_of;  // [vocab] byte value of "<0xAB>" pieces, -1 for the others
};

Tokenizer Tokenizer::load(const std::filesystem::path& model_file) {
  auto impl = std::make_unique<Impl>();
  impl->path = model_file;
  const auto status = impl->sp.Load(model_file.string());
  if (!status.ok())
    throw std::runtime_error("linattn tokenizer: " + model_file.string() +
                             ": cannot load the SentencePiece model: " + status.ToString());
  const int n = impl->sp.GetPieceSize();
  if (n <= 0) throw std::runtime_error("linattn tokenizer: " + model_file.string() + ": empty vocabulary");
  impl->byte_of.assign(static_cast<std::size_t>(n), -1);
  for (int id = 0; id < n; ++id) {
    if (!impl->sp.IsByte(id)) continue;
    // Byte-fallback pieces are spelled "<0xAB>" (SentencePiece's own convention).
    const std::string& p = impl->sp.IdToPiece(id);
    if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>')
      impl->byte_of[static_cast<std::size_t>(id)] = static_cast<std::int16_t>(std::stoi(p.substr(3, 2), nullptr, 16));
  }
  return Tokenizer(std::move(impl));
}

std::vector<std::int64_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  const auto status = impl_->sp.Encode(text, &ids);
  if (!status.ok()) throw std::runtime_error("linattn tokenizer: " + impl_->path.string() + ": encode failed: " + status.ToString());
  std::vector<std::int64_t> out;
  out.reserve(ids.size() + 1);
  if (add_bos) {
    if (bos_id() < 0)
      throw std::invalid_argument("linattn tokenizer: " + impl_->path.string() + ": add_bos requested but the vocabulary has no bos piece");
    out.push_back(bos_id());
  }
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

std::string Tokenizer::decode(std::span<const std::int64_t> ids) const {
  std::vector<int> v;
  v.reserve(ids.size());
  for (std::int64_t id : ids) {
    check_id(id);
    v.push_back(static_cast<int>(id));
  }
  std::string text;
  const auto status = impl_->sp.Decode(v, &text);
  if (!status.ok()) throw std::runtime_error("linattn tokenizer: " + impl_->path.string() + ": decode failed: " + status.ToString());
  return text;
}

std::int64_t Tokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }
std::int64_t Tokenizer::bos_id() const { return impl_->sp.bos_id(); }
std::int64_t Tokenizer::eos_id() const { return impl_->sp.eos_id(); }
std::int64_t Tokenizer::unk_id() const { return impl_->sp.unk_id(); }

std::string Tokenizer::piece(std::int64_t id) const {
  check_id(id);
  return impl_->sp.IdToPiece(static_cast<int>(id));
}

int Tokenizer::byte_value(std::int64_t id) const { return impl_->byte_of[static_cast<std::size_t>(id)]; }

std::optional<Tokenizer> Tokenizer::open_if_present(const std::filesystem::path& model_dir) {
  const auto file = model_dir / "tokenizer.model";
  if (!std::filesystem::exists(file)) return std::nullopt;
  return load(file);
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

const std::filesystem::path& Tokenizer::path() const { return impl_->path; }

void Tokenizer::check_id(std::int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::invalid_argument("linattn tokenizer: " + impl_->path.string() + ": token id " + std::to_string(id) +
                                " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
}

// ---- Stream --------------------------------------------------------------------------------

Tokenizer::Stream::Stream(const Tokenizer& tokenizer, std::span<const std::int64_t> context)
    : tok_(&tokenizer), ids_(context.begin(), context.end()), context_size_(context.size()) {
  for (std::int64_t id : ids_) tok_->check_id(id);
  context_bytes_ = tok_->decode(std::span<const std::int64_t>(ids_).first(stable_prefix())).size();
}

std::string Tokenizer::Stream::push(std::int64_t id) {
  tok_->check_id(id);
  ids_.push_back(id);
  return emit(stable_prefix());
}

std::string Tokenizer::Stream::finish() { return emit(ids_.size()); }

std::string Tokenizer::Stream::emit(std::size_t n_ids) {
  const std::string text = tok_->decode(std::span<const std::int64_t>(ids_).first(n_ids));
  // Decoding more ids only appends text (SentencePiece drops the leading space of the first
  // piece only, and a held-back byte run is not decoded until complete), so the new text is the
  // suffix beyond what was shown.
  const std::size_t shown = context_bytes_ + emitted_;
  if (text.size() <= shown) return {};
  std::string out = text.substr(shown);
  emitted_ += out.size();
  return out;
}

std::size_t Tokenizer::Stream::stable_prefix() const {
  const std::size_t end = ids_.size();
  // A UTF-8 character is at most 4 bytes, so only the last 4 byte pieces can be waiting.
  std::size_t r = end;
  while (r > 0 && end - r < 4 && tok_->byte_value(ids_[r - 1]) >= 0) --r;
  for (std::size_t k = end; k > r; --k) {
    const int b = tok_->byte_value(ids_[k - 1]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back for the lead
    const std::size_t need = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
    return end - (k - 1) < need ? k - 1 : end;  // hold the unfinished character back
  }
  // No lead byte among them: stray continuation bytes that no later byte can complete.
  return end;
}

}  // namespace linattn::examples
