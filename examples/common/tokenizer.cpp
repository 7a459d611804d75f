// See tokenizer.hpp. Built only when CMake found SentencePiece (examples/common/tokenizer.cmake).
#include "common/tokenizer.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sentencepiece_processor.h>

namespace linattn::examples {

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  std::filesystem::path path;
  std::vector<std::int16_t> byte_of;  // [vocab] byte value of "<0xAB>" pieces, -1 for the others
  // An ordinary piece whose text is not empty, which Stream decodes in front of its window (-1:
  // none, the stream then decodes from the start).
  int anchor_id = -1;
  // The model has a denormaliser (rules applied to the whole decoded text): no windows.
  bool denormalizes = false;
};

namespace {

// Whether a serialized ModelProto has a denormalizer_spec (field 5) with a non-empty
// precompiled_charsmap (its field 2): the condition under which SentencePiece applies a
// denormaliser to decoded text. sentencepiece_model.pb.h is not installed, so the protobuf wire
// format is walked directly; anything unexpected answers true (windows off: slower, still exact).
bool has_denormalizer(std::string_view msg, int depth = 0) {
  std::size_t p = 0;
  const auto varint = [&](std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= msg.size()) return false;
      const auto b = static_cast<unsigned char>(msg[p++]);
      v |= std::uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (p < msg.size()) {
    std::uint64_t key = 0, n = 0;
    if (!varint(key)) return true;
    const auto field = key >> 3;
    switch (key & 7) {
      case 0:
        if (!varint(n)) return true;
        break;
      case 1:
        p += 8;
        break;
      case 5:
        p += 4;
        break;
      case 2: {
        if (!varint(n) || n > msg.size() - std::min(p, msg.size())) return true;
        const std::string_view body = msg.substr(p, static_cast<std::size_t>(n));
        if (depth == 0 && field == 5 && has_denormalizer(body, 1)) return true;
        if (depth == 1 && field == 2 && n > 0) return true;
        p += static_cast<std::size_t>(n);
        break;
      }
      default:
        return true;
    }
  }
  return p > msg.size();
}

}  // namespace

Tokenizer Tokenizer::load(const std::filesystem::path& model_file) {
  auto impl = std::make_unique<Impl>();
  impl->path = model_file;
  // Load() reports a malformed model through its status, except where the trie builder it uses
  // throws instead (Darts::Details::Exception, a std::exception, for an empty piece): both are
  // the documented std::runtime_error here.
  sentencepiece::util::Status status;
  try {
    status = impl->sp.Load(model_file.string());
  } catch (const std::exception& e) {
    throw std::runtime_error("linattn tokenizer: " + model_file.string() + ": cannot load the SentencePiece model: " + e.what());
  }
  if (!status.ok())
    throw std::runtime_error("linattn tokenizer: " + model_file.string() +
                             ": cannot load the SentencePiece model: " + status.ToString());
  const int n = impl->sp.GetPieceSize();
  if (n <= 0) throw std::runtime_error("linattn tokenizer: " + model_file.string() + ": empty vocabulary");
  impl->byte_of.assign(static_cast<std::size_t>(n), -1);
  for (int id = 0; id < n; ++id) {
    if (!impl->sp.IsByte(id)) continue;
    // Byte-fallback pieces are spelled "<0xAB>", two upper-case hex digits: SentencePiece's own
    // spelling, the only one its decoder maps to a byte (any other makes its decode fail).
    const std::string& p = impl->sp.IdToPiece(id);
    const auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && hex(p[3]) >= 0 && hex(p[4]) >= 0)
      impl->byte_of[static_cast<std::size_t>(id)] = static_cast<std::int16_t>(hex(p[3]) * 16 + hex(p[4]));
  }
  impl->denormalizes = has_denormalizer(impl->sp.serialized_model_proto());
  for (int id = 0; id < n && impl->anchor_id < 0; ++id) {
    if (impl->sp.IsControl(id) || impl->sp.IsUnknown(id) || impl->sp.IsByte(id) || impl->sp.IsUnused(id)) continue;
    std::string text;
    if (impl->sp.Decode(std::vector<int>{id}, &text).ok() && !text.empty()) impl->anchor_id = id;
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
bool Tokenizer::denormalizes() const { return impl_->denormalizes; }

void Tokenizer::check_id(std::int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::invalid_argument("linattn tokenizer: " + impl_->path.string() + ": token id " + std::to_string(id) +
                                " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
}

// ---- Stream --------------------------------------------------------------------------------

Tokenizer::Stream::Stream(const Tokenizer& tokenizer, std::span<const std::int64_t> context)
    : tok_(&tokenizer), ids_(context.begin(), context.end()), context_size_(context.size()) {
  for (std::int64_t id : ids_) tok_->check_id(id);
  (void)emit(stable_prefix());  // the context's text is accounted for, not returned
}

std::string Tokenizer::Stream::push(std::int64_t id) {
  tok_->check_id(id);
  ids_.push_back(id);
  return emit(stable_prefix());
}

std::string Tokenizer::Stream::finish() { return emit(ids_.size()); }

std::string Tokenizer::Stream::emit(std::size_t n_ids) {
  if (n_ids <= start_) return {};
  const Impl& impl = *tok_->impl_;
  std::vector<int> window;
  window.reserve(n_ids - start_ + 1);
  if (anchored_) window.push_back(impl.anchor_id);
  for (std::size_t i = start_; i < n_ids; ++i) window.push_back(static_cast<int>(ids_[i]));
  decoded_ids_ += window.size();
  const auto fail = [&](const sentencepiece::util::Status& status) {
    throw std::runtime_error("linattn tokenizer: " + impl.path.string() + ": decode failed: " + status.ToString());
  };

  if (impl.denormalizes) {  // start_ stays 0: the whole text, every time
    std::string text;
    if (const auto status = impl.sp.Decode(window, &text); !status.ok()) fail(status);
    if (text.size() <= shown_) return {};
    std::string out = text.substr(shown_);
    shown_ = text.size();
    return out;
  }

  sentencepiece::ImmutableSentencePieceText spt;
  if (const auto status = impl.sp.Decode(window, spt.mutable_proto()); !status.ok()) fail(status);
  const std::size_t first = anchored_ ? 1 : 0;  // the anchor piece's own text is not ours
  const std::size_t pieces = spt.pieces_size();
  if (pieces != window.size()) throw std::logic_error("linattn tokenizer: SentencePiece decoded a different number of pieces");
  // Text of the window after the anchor, and where each of its pieces ends in it.
  std::string text;
  std::vector<std::size_t> end(n_ids - start_);
  std::size_t leading_controls = 0;  // window pieces from start_ that are all control pieces
  bool all_control = true;
  for (std::size_t w = first; w < pieces; ++w) {
    text += spt.pieces(static_cast<int>(w)).surface();
    end[w - first] = text.size();
    all_control = all_control && impl.sp.IsControl(window[w]);
    if (all_control) ++leading_controls;
  }
  std::string out;
  if (text.size() > shown_) {
    out = text.substr(shown_);
    shown_ = text.size();
  }

  // Move the anchor as far as it goes: to just after the last piece j of the window after which
  // decoding restarts cleanly — j is not a byte piece, or is a byte piece with text (it completes
  // a character or is an invalid byte), so no byte sequence straddles the cut; and there is text
  // before the cut, so SentencePiece no longer strips the leading space of what follows (behind
  // the anchor piece, it does not either). With no text yet, only a run of control pieces from
  // the start can be dropped (the state after them is the initial one).
  for (std::size_t k = n_ids - start_; k-- > 0;) {
    const std::size_t j = start_ + k;
    const bool cut = impl.byte_of[static_cast<std::size_t>(ids_[j])] < 0 ||
                     !spt.pieces(static_cast<int>(first + k)).surface().empty();
    if (!cut) continue;
    const bool text_before = text_before_ || end[k] > 0;
    if (text_before && impl.anchor_id >= 0) {
      anchored_ = true;
    } else if (!text_before && !anchored_ && k < leading_controls) {
      // anchored_ stays false: decoding restarts from the initial state
    } else {
      continue;
    }
    shown_ = text.size() - end[k];  // the text after j (all of it already returned)
    text_before_ = text_before;
    start_ = j + 1;
    break;
  }
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
