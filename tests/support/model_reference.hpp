// A float64, token-by-token transcription of SPEC §5.0–5.2 and §6 for the GLA and GSA models,
// reading the checkpoint by its upstream key names. Written for clarity, not speed: the tests
// compare every config option of the library's models (and each layer: attention, gated MLP,
// short convolution) against it.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "linattn/io/checkpoint.hpp"

namespace linattn::testing {

class ReferenceModel {
 public:
  using Vec = std::vector<double>;
  using Mat = std::vector<Vec>;  // [rows][cols]

  explicit ReferenceModel(const io::Checkpoint& ck) : ck_(ck) {
    const auto& c = ck.config();
    type_ = c.at("model_type").get<std::string>();
    D_ = c.at("hidden_size").get<index_t>();
    L_ = c.at("num_hidden_layers").get<index_t>();
    H_ = c.value("num_heads", 4);
    Hkv_ = c.contains("num_kv_heads") && !c["num_kv_heads"].is_null() ? c["num_kv_heads"].get<index_t>() : H_;
    const bool gla = type_ == "gla";
    K_ = static_cast<index_t>(D_ * c.value("expand_k", gla ? 0.5 : 1.0)) / H_;
    V_ = static_cast<index_t>(D_ * c.value("expand_v", 1.0)) / H_;
    M_ = c.contains("num_slots") && !c["num_slots"].is_null() ? c["num_slots"].get<index_t>() : K_;
    eps_ = c.value("norm_eps", 1e-6);
    conv_ = c.value("use_short_conv", false);
    W_ = c.value("conv_size", 4);
    fm_ = c.contains("feature_map") && !c["feature_map"].is_null() ? c["feature_map"].get<std::string>() : "none";
    gate_ = c.value("use_output_gate", true);
    if (c.contains("clamp_min") && !c["clamp_min"].is_null()) clamp_ = c["clamp_min"].get<double>();
    normalizer_ = gla ? 16.0 : c.value("gate_logit_normalizer", 8.0);
  }

  // ids [T] → logits [T][vocab]
  Mat forward(const std::vector<std::int64_t>& ids) const {
    const Mat emb = mat("model.embeddings.weight");
    Mat h;
    for (auto id : ids) h.push_back(emb[static_cast<std::size_t>(id)]);
    for (index_t l = 0; l < L_; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const Mat x = rms(h, vec(pick({p + "attn_norm.weight", p + "attn.norm.weight"})), eps_);
      add(h, type_ == "gla" ? gla(x, p + "attn.") : gsa(x, p + "attn."));
      const Mat y = rms(h, vec(pick({p + "mlp_norm.weight", p + "mlp.norm.weight"})), eps_);
      add(h, mlp(y, p + "mlp."));
    }
    const Mat x = rms(h, vec("model.norm.weight"), eps_);
    return matmul(x, ck_.contains("lm_head.weight") ? mat("lm_head.weight") : emb);
  }

 // The pieces, public for the layer tests (tests/models/test_layers.cpp): x [T][in] rows.
  static double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
  static double silu(double x) { return x * sigmoid(x); }
  static double logsigmoid(double x) { return -std::log1p(std::exp(-x)); }

  Vec vec(const std::string& key) const {
    const auto t = ck_.floats(key, ck_.info(key).shape);
    return Vec(t.data, t.data + t.numel());
  }
  Mat mat(const std::string& key) const {
    const auto& shape = ck_.info(key).shape;
    const auto t = ck_.floats(key, shape);
    const index_t cols = t.numel() / shape[0];
    Mat m(static_cast<std::size_t>(shape[0]));
    for (index_t r = 0; r < shape[0]; ++r) m[r].assign(t.data + r * cols, t.data + (r + 1) * cols);
    return m;
  }
  std::string pick(std::initializer_list<std::string> keys) const {
    for (const auto& k : keys)
      if (ck_.contains(k)) return k;
    return *keys.begin();
  }
  // x [T][in] · w[out][in]ᵀ
  static Mat matmul(const Mat& x, const Mat& w) {
    Mat y(x.size(), Vec(w.size()));
    for (std::size_t t = 0; t < x.size(); ++t)
      for (std::size_t o = 0; o < w.size(); ++o) {
        double s = 0;
        for (std::size_t i = 0; i < w[o].size(); ++i) s += x[t][i] * w[o][i];
        y[t][o] = s;
      }
    return y;
  }
  static Vec rms1(const Vec& x, const Vec& w, double eps) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
    Vec y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] * r * (w.empty() ? 1.0 : w[i]);
    return y;
  }
  static Mat rms(const Mat& x, const Vec& w, double eps) {
    Mat y;
    for (const auto& r : x) y.push_back(rms1(r, w, eps));
    return y;
  }
  static void add(Mat& h, const Mat& a) {
    for (std::size_t t = 0; t < h.size(); ++t)
      for (std::size_t j = 0; j < h[t].size(); ++j) h[t][j] += a[t][j];
  }
  Mat mlp(const Mat& x, const std::string& p) const {
    Mat g, u;
    if (ck_.contains(p + "up_proj.weight")) {
      g = matmul(x, mat(p + "gate_proj.weight"));
      u = matmul(x, mat(p + "up_proj.weight"));
    } else {  // legacy fused gate_proj [2I, D]
      const Mat gu = matmul(x, mat(p + "gate_proj.weight"));
      for (const auto& r : gu) {
        g.emplace_back(r.begin(), r.begin() + static_cast<long>(r.size() / 2));
        u.emplace_back(r.begin() + static_cast<long>(r.size() / 2), r.end());
      }
    }
    for (std::size_t t = 0; t < g.size(); ++t)
      for (std::size_t j = 0; j < g[t].size(); ++j) g[t][j] = silu(g[t][j]) * u[t][j];
    return matmul(g, mat(p + "down_proj.weight"));
  }
  // Causal depthwise conv over time with SiLU (zero history).
  Mat conv(const Mat& x, const std::string& key) const {
    const Vec w = vec(key);  // [C, 1, W]
    Mat y(x.size(), Vec(x[0].size()));
    for (std::size_t t = 0; t < x.size(); ++t)
      for (std::size_t c = 0; c < x[t].size(); ++c) {
        double s = 0;
        for (index_t k = 0; k < W_; ++k) {
          const long src = static_cast<long>(t) - (W_ - 1) + k;
          if (src >= 0) s += w[c * W_ + k] * x[static_cast<std::size_t>(src)][c];
        }
        y[t][c] = silu(s);
      }
    return y;
  }
  double phi(double x) const {
    if (fm_ == "relu") return x > 0 ? x : 0;
    if (fm_ == "swish" || fm_ == "silu") return silu(x);
    if (fm_ == "sigmoid") return sigmoid(x);
    if (fm_ == "tanh") return std::tanh(x);
    return x;
  }

  // q, k, v projections, each through its own convolution when the model has them.
  std::tuple<Mat, Mat, Mat> qkv(const Mat& x, const std::string& p) const {
    Mat out[3];
    const char* names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; ++i) {
      out[i] = matmul(x, mat(p + names[i] + "_proj.weight"));
      if (conv_) out[i] = conv(out[i], p + names[i] + "_conv1d.weight");
    }
    return {out[0], out[1], out[2]};
  }

  // The token mixer of attention prefix p ("model.layers.i.attn.").
  Mat attention(const Mat& x, const std::string& p) const { return type_ == "gla" ? gla(x, p) : gsa(x, p); }

  Mat gla(const Mat& x, const std::string& p) const {
    auto [q, k, v] = qkv(x, p);
    Mat gk = matmul(matmul(x, mat(p + "gk_proj.0.weight")), mat(p + "gk_proj.1.weight"));
    const Vec bias = vec(p + "gk_proj.1.bias");
    const index_t T = static_cast<index_t>(x.size()), G = H_ / Hkv_;
    for (auto& r : gk)
      for (std::size_t j = 0; j < r.size(); ++j) {
        r[j] = logsigmoid(r[j] + bias[j]) / normalizer_;
        if (clamp_) r[j] = std::max(r[j], *clamp_);
      }
    for (auto* m : {&q, &k})
      for (auto& r : *m)
        for (double& e : r) e = phi(e);
    const std::string nk = pick({p + "g_norm_swish_gate.weight", p + "g_norm.weight"});
    const Vec gw = ck_.contains(nk) ? vec(nk) : Vec{};
    const Mat g = gate_ ? matmul(x, mat(p + "g_proj.weight")) : Mat{};
    Mat o(static_cast<std::size_t>(T), Vec(static_cast<std::size_t>(H_ * V_)));
    const double scale = 1.0 / std::sqrt(static_cast<double>(K_));
    for (index_t h = 0; h < H_; ++h) {
      const index_t kv = h / G;
      Mat S(static_cast<std::size_t>(K_), Vec(static_cast<std::size_t>(V_), 0.0));
      for (index_t t = 0; t < T; ++t) {
        Vec out(static_cast<std::size_t>(V_), 0.0);
        for (index_t a = 0; a < K_; ++a)
          for (index_t b = 0; b < V_; ++b) {
            S[a][b] = std::exp(gk[t][kv * K_ + a]) * S[a][b] + k[t][kv * K_ + a] * v[t][kv * V_ + b];
            out[b] += scale * q[t][h * K_ + a] * S[a][b];
          }
        const Vec n = rms1(out, gw, eps_);
        for (index_t b = 0; b < V_; ++b) o[t][h * V_ + b] = n[b] * (gate_ ? silu(g[t][h * V_ + b]) : 1.0);
      }
    }
    return matmul(o, mat(p + "o_proj.weight"));
  }

  Mat gsa(const Mat& x, const std::string& p) const {
    auto [q, k, v] = qkv(x, p);
    Mat f = matmul(x, mat(p + "f_proj.weight"));
    if (fm_ == "t2r") {  // relu(Linear_{K→K}) per head
      const Mat w = mat(p + "feature_map.layer.weight");
      for (auto* m : {&q, &k})
        for (auto& r : *m)
          for (std::size_t h0 = 0; h0 < r.size(); h0 += static_cast<std::size_t>(K_)) {
            const Vec in(r.begin() + static_cast<long>(h0), r.begin() + static_cast<long>(h0) + K_);
            for (index_t a = 0; a < K_; ++a) {
              double s = 0;
              for (index_t b = 0; b < K_; ++b) s += w[a][b] * in[b];
              r[h0 + a] = s > 0 ? s : 0;
            }
          }
    } else {
      for (auto* m : {&q, &k})
        for (auto& r : *m)
          for (double& e : r) e = phi(e);
    }
    for (auto& r : v)
      for (double& e : r) e = silu(e);
    const index_t T = static_cast<index_t>(x.size()), G = H_ / Hkv_;
    Mat o(static_cast<std::size_t>(T), Vec(static_cast<std::size_t>(H_ * V_)));
    for (index_t h = 0; h < H_; ++h) {
      const index_t kv = h / G;
      Mat Hk(static_cast<std::size_t>(K_), Vec(static_cast<std::size_t>(M_), 0.0));
      Mat Hv(static_cast<std::size_t>(M_), Vec(static_cast<std::size_t>(V_), 0.0));
      for (index_t t = 0; t < T; ++t) {
        Vec a(static_cast<std::size_t>(M_)), s(static_cast<std::size_t>(M_)), score(static_cast<std::size_t>(M_), 0.0);
        for (index_t m = 0; m < M_; ++m) {
          const double fg = logsigmoid(f[t][kv * M_ + m]) / normalizer_;
          a[m] = std::exp(fg);
          s[m] = 1.0 - a[m];
        }
        for (index_t i = 0; i < K_; ++i)
          for (index_t m = 0; m < M_; ++m) {
            Hk[i][m] = Hk[i][m] * a[m] + k[t][kv * K_ + i] * s[m];
            score[m] += Hk[i][m] * q[t][h * K_ + i];
          }
        double mx = -INFINITY, z = 0;
        for (double e : score) mx = std::max(mx, e);
        for (double& e : score) z += (e = std::exp(e - mx));
        for (double& e : score) e /= z;
        for (index_t m = 0; m < M_; ++m)
          for (index_t j = 0; j < V_; ++j) {
            Hv[m][j] = Hv[m][j] * a[m] + s[m] * v[t][kv * V_ + j];
            o[t][h * V_ + j] += Hv[m][j] * score[m];
          }
      }
    }
    for (auto& r : o)
      for (double& e : r) e = silu(e);
    const Vec gw = ck_.contains(p + "g_norm.weight") ? vec(p + "g_norm.weight") : Vec{};
    return matmul(rms(o, gw, 1e-5), mat(p + "o_proj.weight"));
  }

 private:
  const io::Checkpoint& ck_;
  std::string type_, fm_;
  index_t D_ = 0, L_ = 0, H_ = 0, Hkv_ = 0, K_ = 0, V_ = 0, M_ = 0, W_ = 4;
  double eps_ = 1e-6, normalizer_ = 16;
  bool conv_ = false, gate_ = true;
  std::optional<double> clamp_;
};

}  // namespace linattn::testing
