"""Golden fixtures for the model file formats: config.json (model/model_config.c), safetensors
(model/safetensors.c) and the fp32 <-> bf16/fp16/FP8 conversions (model/dtype.c).

Run from the repository root:   python3 tests/ref/make_safetensors_fixture.py
Needs: torch (>= 2.1, for float8), safetensors, transformers (>= 5), numpy.
Writes, under tests/fixtures/model_io/ (about 110 KB in all), read by tests/test_model_config.c
and tests/test_safetensors.c:
  hf_tiny_config.json       DeepseekV3Config(...tiny sizes, YaRN, MTP...).save_pretrained() output.
  config_cases.json         [{name, text (a config.json), expected {field: value as transformers
                            reads it, softmax_scale: DeepseekV3Attention's scaling}}]; the cases
                            cover transformers v5 output, DeepSeek's own (v4-era) layout, the
                            defaults, eos lists / null ids, and a partial YaRN block.
  torch_dtypes.safetensors  tensors of many dtypes written by safetensors.torch.save_file.
  torch_dtypes.json         {name: {dtype, shape, f32_bits: torch's .float() of the tensor as int32 bits}}.
  dtype_conversions.safetensors   (I32/I16/U8 tensors holding raw bits)
      e4m3.decode, e5m2.decode  [256]  torch's fp32 value of every FP8 code
      sweep.in                  [N]    fp32 inputs: specials, every FP8 value, midpoints between
                                       neighbouring codes and one fp32 ulp either side, fp16/bf16
                                       midpoints, out-of-range values, random magnitudes and bits
      sweep.bf16, sweep.f16     [N]    torch's x.to(bfloat16 / float16)
      sweep.e4m3, sweep.e5m2    [N]    torch's x.to(float8_e4m3fn / float8_e5m2)
      sweep.f16_f32             [N]    torch's x.to(float16).float()
Every number is produced by torch / transformers / safetensors themselves.

Optional checks of files that the C code wrote (not needed by the tests):
  python3 tests/ref/make_safetensors_fixture.py --verify-config C_WRITTEN.json ORIGINAL.json
      transformers must load both and read every DeepSeek-V3 field the same; keys of ORIGINAL
      that posttrain keeps verbatim must come back with equal values.
  python3 tests/ref/make_safetensors_fixture.py --verify-safetensors FILE_OR_FOLDER
      safetensors (Rust) must open the file (or the index + shards of a folder); tensors named
      ramp.<dtype> must equal torch's conversion of arange(n) * 0.25 - 2 (what the C test writes).
"""
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import yarn_apply_mscale

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "model_io")

# ---------------------------------------------------------------------------------------------
# config.json

TINY = dict(
    vocab_size=96, hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=3,
    num_attention_heads=4, num_key_value_heads=4, n_shared_experts=1, n_routed_experts=8,
    routed_scaling_factor=2.5, kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=8, v_head_dim=12,
    qk_nope_head_dim=16, n_group=4, topk_group=2, num_experts_per_tok=3, first_k_dense_replace=1,
    norm_topk_prob=True, max_position_embeddings=256, rms_norm_eps=1e-5, initializer_range=0.01,
    tie_word_embeddings=False, pad_token_id=2, bos_token_id=0, eos_token_id=1, num_mtp_layers=1,
    rope_parameters=dict(rope_type="yarn", rope_theta=5000.0, factor=4.0, original_max_position_embeddings=64,
                         beta_fast=24.0, beta_slow=2.0, mscale=0.707, mscale_all_dim=1.0),
    posttrain_bias_update_speed=0.002, posttrain_seq_aux_alpha=0.0003, posttrain_mtp_loss_weight=0.1,
)

SMALL_SIZES = {
    "vocab_size": 64, "hidden_size": 16, "intermediate_size": 24, "moe_intermediate_size": 8,
    "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "n_routed_experts": 4, "n_group": 2, "topk_group": 1,
    "num_experts_per_tok": 2, "first_k_dense_replace": 1, "kv_lora_rank": 8, "qk_rope_head_dim": 4,
    "qk_nope_head_dim": 4, "v_head_dim": 4,
}

# DeepSeek's own config.json layout (v4-era keys: rope_theta + rope_scaling with "type"), small sizes.
DEEPSEEK_STYLE = """{
  "architectures": ["DeepseekV3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekV3Config",
               "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM"},
  "aux_loss_alpha": 0.001,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "ep_size": 1,
  "first_k_dense_replace": 1,
  "hidden_act": "silu",
  "hidden_size": 64,
  "initializer_range": 0.02,
  "intermediate_size": 96,
  "kv_lora_rank": 32,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v3",
  "moe_intermediate_size": 16,
  "moe_layer_freq": 1,
  "n_group": 8,
  "n_routed_experts": 32,
  "n_shared_experts": 1,
  "norm_topk_prob": true,
  "num_attention_heads": 4,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 4,
  "num_key_value_heads": 4,
  "num_nextn_predict_layers": 1,
  "pretraining_tp": 1,
  "q_lora_rank": null,
  "qk_nope_head_dim": 16,
  "qk_rope_head_dim": 8,
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                          "weight_block_size": [128, 128]},
  "rms_norm_eps": 1e-06,
  "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                   "original_max_position_embeddings": 4096, "type": "yarn"},
  "rope_theta": 10000,
  "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid",
  "seq_aux": true,
  "tie_word_embeddings": false,
  "topk_group": 4,
  "topk_method": "noaux_tc",
  "torch_dtype": "bfloat16",
  "transformers_version": "4.33.1",
  "use_cache": true,
  "v_head_dim": 16,
  "vocab_size": 128
}
"""


def _eos_list_text():
    d = {"model_type": "deepseek_v3", **SMALL_SIZES, "eos_token_id": [1, 5], "bos_token_id": None,
         "pad_token_id": None, "tie_word_embeddings": True, "rope_theta": 12345.0, "rope_scaling": None,
         "q_lora_rank": None, "num_key_value_heads": None, "norm_topk_prob": False, "rope_interleave": False,
         "num_nextn_predict_layers": 2, "routed_scaling_factor": 1.0}
    return json.dumps(d, indent=2)


def _yarn_partial_text():
    d = {"model_type": "deepseek_v3", **SMALL_SIZES, "max_position_embeddings": 256,
         "rope_parameters": {"type": "yarn", "factor": 8, "original_max_position_embeddings": 32,
                             "rope_theta": 20000.0, "mscale_all_dim": 0.5, "beta_fast": 0, "beta_slow": None},
         "rope_theta": 999.0}
    return json.dumps(d, indent=2)


def expected_fields(c):
    """Every field posttrain models, as transformers holds it after loading."""
    rp = c.rope_parameters or {}
    rope_type = rp.get("rope_type", "default")
    e = {k: getattr(c, k) for k in [
        "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "n_shared_experts", "n_routed_experts",
        "routed_scaling_factor", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "v_head_dim",
        "qk_nope_head_dim", "n_group", "topk_group", "num_experts_per_tok", "first_k_dense_replace",
        "norm_topk_prob", "hidden_act", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings",
        "initializer_range", "bos_token_id", "pad_token_id", "eos_token_id", "num_nextn_predict_layers",
        "attention_bias", "rope_interleave"]}
    e["rope_type"] = rope_type
    e["rope_theta"] = rp.get("rope_theta")
    if rope_type == "yarn":
        e["factor"] = rp.get("factor")
        e["attention_factor"] = rp.get("attention_factor")
        e["beta_fast"] = rp.get("beta_fast") or 32   # as _compute_yarn_parameters reads them
        e["beta_slow"] = rp.get("beta_slow") or 1
        e["mscale"] = rp.get("mscale")
        e["mscale_all_dim"] = rp.get("mscale_all_dim")
        e["original_max_position_embeddings"] = rp.get("original_max_position_embeddings")
        e["truncate"] = rp.get("truncate", True)
    e["softmax_scale"] = yarn_apply_mscale(rp, (c.qk_nope_head_dim + c.qk_rope_head_dim) ** -0.5)
    for k in ["posttrain_bias_update_speed", "posttrain_seq_aux_alpha", "posttrain_mtp_loss_weight"]:
        e[k] = getattr(c, k, None)
    q = getattr(c, "quantization_config", None)
    e["quantization_config"] = q if isinstance(q, dict) else None
    return e


def make_configs():
    tmp = tempfile.mkdtemp()
    try:
        DeepseekV3Config(**TINY).save_pretrained(tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            hf_text = f.read()
    finally:
        shutil.rmtree(tmp)
    with open(os.path.join(ROOT, "hf_tiny_config.json"), "w") as f:
        f.write(hf_text)
    cases = []
    for name, text in [("hf_tiny", hf_text), ("deepseek_style", DEEPSEEK_STYLE),
                       ("defaults", '{"model_type": "deepseek_v3"}'), ("eos_list_plain_rope", _eos_list_text()),
                       ("yarn_partial", _yarn_partial_text())]:
        c = DeepseekV3Config.from_dict(json.loads(text))
        cases.append({"name": name, "text": text, "expected": expected_fields(c)})
    with open(os.path.join(ROOT, "config_cases.json"), "w") as f:
        json.dump(cases, f, indent=1)


def verify_config(c_path, orig_path):
    with open(c_path) as f:
        c_json = json.load(f)
    with open(orig_path) as f:
        o_json = json.load(f)
    a = expected_fields(DeepseekV3Config.from_dict(c_json))
    b = expected_fields(DeepseekV3Config.from_dict(o_json))
    # where the original lacks a key, posttrain writes its own default (see model_config.h)
    ours = {"num_nextn_predict_layers", "posttrain_bias_update_speed", "posttrain_seq_aux_alpha",
            "posttrain_mtp_loss_weight"}
    bad = [k for k in a if a[k] != b[k] and not (k in ours and k not in o_json and "num_mtp_layers" not in o_json)]
    for k in bad:
        print(f"  field {k}: C-written {a[k]!r} != original {b[k]!r}")
    known = set(a) | {"model_type", "architectures", "head_dim", "qk_head_dim", "rope_parameters", "rope_scaling",
                      "num_mtp_layers", "num_local_experts"}
    for k, v in o_json.items():
        if k not in known and c_json.get(k) != v:
            print(f"  kept key {k}: C-written {c_json.get(k)!r} != original {v!r}")
            bad.append(k)
    print("verify-config:", "OK" if not bad else f"{len(bad)} differences")
    return 0 if not bad else 1


# ---------------------------------------------------------------------------------------------
# safetensors written by torch

def _content(path):
    """(header as a dict, data bytes): what a safetensors file holds, whatever its key order."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def save_file_stable(tensors, path, metadata):
    """save_file, but keep the existing file when it holds the same content: the Rust library
    writes __metadata__ in hash-map order, which changes from run to run."""
    tmp = path + ".new"
    save_file(tensors, tmp, metadata=metadata)
    if os.path.exists(path) and _content(path) == _content(tmp):
        os.remove(tmp)
    else:
        os.replace(tmp, path)


def bits_of(t):
    return t.float().contiguous().view(torch.int32).flatten().tolist()


def make_torch_dtypes():
    g = torch.Generator().manual_seed(1234)
    tensors = {
        "a.f32": torch.randn(3, 5, generator=g),
        "b.bf16": (torch.randn(4, 3, generator=g) * 3).to(torch.bfloat16),
        "c.f16": torch.randn(2, 2, 3, generator=g).to(torch.float16),
        "d.e4m3": (torch.randn(16, generator=g) * 100).to(torch.float8_e4m3fn),
        "e.e5m2": (torch.randn(2, 8, generator=g) * 1000).to(torch.float8_e5m2),
        "f.i64": torch.arange(-3, 4, dtype=torch.int64),
        "g.i32": torch.tensor([[-7, 0, 2**31 - 1]], dtype=torch.int32),
        "h.u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "i.bool": torch.tensor([True, False, True]),
        "j.f64": torch.randn(5, generator=g, dtype=torch.float64) * 1e3,
        "k.i8": torch.tensor([-128, -1, 127], dtype=torch.int8),
        "l.i16": torch.tensor([-32768, 5, 32767], dtype=torch.int16),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }
    if hasattr(torch, "float8_e8m0fnu"):
        tensors["m.e8m0"] = torch.tensor([0, 1, 126, 127, 128, 254], dtype=torch.uint8).view(torch.float8_e8m0fnu)
    path = os.path.join(ROOT, "torch_dtypes.safetensors")
    save_file_stable(tensors, path, metadata={"format": "pt", "source": "posttrain fixture"})
    expected = {}
    with safe_open(path, framework="pt") as f:
        for name in f.keys():
            sl = f.get_slice(name)
            t = f.get_tensor(name)
            expected[name] = {"dtype": sl.get_dtype(), "shape": list(sl.get_shape()), "f32_bits": bits_of(t)}
    with open(os.path.join(ROOT, "torch_dtypes.json"), "w") as fh:
        json.dump(expected, fh, indent=1)


# ---------------------------------------------------------------------------------------------
# conversions

def f32_from_bits(b):
    return np.array(b, dtype=np.uint32).view(np.float32)


def grid_probes(values):
    """values sorted, non-negative, finite: each value, each midpoint, and one fp32 ulp around midpoints."""
    v = np.array(sorted(set(values)), dtype=np.float32)
    mids = ((v[:-1].astype(np.float64) + v[1:].astype(np.float64)) / 2).astype(np.float32)
    assert np.all(mids.astype(np.float64) == (v[:-1].astype(np.float64) + v[1:].astype(np.float64)) / 2)
    up = np.nextafter(mids, np.float32(np.inf))
    down = np.nextafter(mids, np.float32(0))
    return np.concatenate([v, mids, up, down])


def make_conversions():
    rng = np.random.default_rng(20240601)
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    e4m3_vals = codes.view(torch.float8_e4m3fn).float()
    e5m2_vals = codes.view(torch.float8_e5m2).float()

    parts = []
    specials = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, 3.4028234663852886e38, -3.4028234663852886e38,
                1.1754943508222875e-38, 1.401298464324817e-45, -1.401298464324817e-45,
                448.0, 464.0, 464.00003, 479.99997, 480.0, 500.0, 1e4, 57344.0, 61439.996, 61440.0, 65504.0,
                65519.996, 65520.0, 1e6, 2.0 ** -9, 2.0 ** -10, 1.5 * 2.0 ** -10, 2.0 ** -16, 2.0 ** -17,
                1.5 * 2.0 ** -17, 2.0 ** -24, 2.0 ** -25, 1.5 * 2.0 ** -25, 2.0 ** -126, 1 + 2.0 ** -8,
                1 + 3 * 2.0 ** -8, 1 + 2.0 ** -8 + 2.0 ** -23]
    sp = np.array(specials, dtype=np.float32)
    nans = f32_from_bits([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF812345, 0x7FFFFFFF])
    parts += [sp, -sp, nans]
    for vals in (e4m3_vals, e5m2_vals):
        fin = vals[torch.isfinite(vals) & (vals >= 0)].numpy()
        p = grid_probes(fin)
        parts += [p, -p]
    # fp16 and bf16: midpoints of random neighbouring codes (normals and subnormals)
    for n_codes, kind in ((300, "f16"), (300, "bf16")):
        if kind == "f16":
            c = rng.integers(0, 0x7BFF, size=n_codes).astype(np.uint16)
            lo = torch.from_numpy(c.view(np.int16).copy()).view(torch.float16).float().numpy()
            hi = torch.from_numpy((c + 1).view(np.int16).copy()).view(torch.float16).float().numpy()
        else:
            c = rng.integers(0, 0x7F7F, size=n_codes).astype(np.uint16)
            lo = torch.from_numpy(c.view(np.int16).copy()).view(torch.bfloat16).float().numpy()
            hi = torch.from_numpy((c + 1).view(np.int16).copy()).view(torch.bfloat16).float().numpy()
        mids = ((lo.astype(np.float64) + hi.astype(np.float64)) / 2).astype(np.float32)
        sub = np.concatenate([mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(0))])
        sign = np.where(rng.random(sub.size) < 0.5, -1, 1).astype(np.float32)
        parts.append(sub * sign)
    mags = np.exp2(rng.uniform(-30, 20, size=1200)).astype(np.float32)
    parts.append(mags * np.where(rng.random(mags.size) < 0.5, -1, 1).astype(np.float32))
    parts.append(rng.integers(0, 2 ** 32, size=400, dtype=np.uint64).astype(np.uint32).view(np.float32))
    sweep = np.concatenate(parts).astype(np.float32)

    x = torch.from_numpy(sweep.copy())
    out = {
        "e4m3.decode": e4m3_vals.contiguous().view(torch.int32),
        "e5m2.decode": e5m2_vals.contiguous().view(torch.int32),
        "sweep.in": x.view(torch.int32),
        "sweep.bf16": x.to(torch.bfloat16).view(torch.int16),
        "sweep.f16": x.to(torch.float16).view(torch.int16),
        "sweep.e4m3": x.to(torch.float8_e4m3fn).view(torch.uint8),
        "sweep.e5m2": x.to(torch.float8_e5m2).view(torch.uint8),
        "sweep.f16_f32": x.to(torch.float16).float().view(torch.int32),
    }
    save_file_stable({k: v.contiguous() for k, v in out.items()}, os.path.join(ROOT, "dtype_conversions.safetensors"),
                     metadata={"format": "pt", "sweep_size": str(sweep.size)})


# ---------------------------------------------------------------------------------------------
# verify a C-written safetensors file or folder

RAMP_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
               "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "F64": torch.float64}


def verify_safetensors(path):
    files = [path]
    if os.path.isdir(path):
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                wm = json.load(f)["weight_map"]
            files = sorted({os.path.join(path, v) for v in wm.values()})
        else:
            files = [os.path.join(path, "model.safetensors")]
    bad = 0
    for fp in files:
        with safe_open(fp, framework="pt") as f:
            print(fp, f.metadata())
            for name in f.keys():
                t = f.get_tensor(name)
                msg = ""
                if name.startswith("ramp."):
                    dt = f.get_slice(name).get_dtype()
                    want = (torch.arange(t.numel(), dtype=torch.float32) * 0.25 - 2).to(RAMP_DTYPES[dt])
                    same = torch.equal(t.flatten().view(torch.uint8), want.view(torch.uint8))
                    bad += not same
                    msg = "ramp OK" if same else "ramp MISMATCH"
                print(f"  {name} {t.dtype} {list(t.shape)} {msg}")
    print("verify-safetensors:", "OK" if not bad else f"{bad} mismatches")
    return 0 if not bad else 1


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--verify-config":
        return verify_config(sys.argv[2], sys.argv[3])
    if len(sys.argv) >= 3 and sys.argv[1] == "--verify-safetensors":
        return verify_safetensors(sys.argv[2])
    os.makedirs(ROOT, exist_ok=True)
    make_configs()
    make_torch_dtypes()
    make_conversions()
    for name in sorted(os.listdir(ROOT)):
        print(f"{os.path.getsize(os.path.join(ROOT, name)):8d}  tests/fixtures/model_io/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
