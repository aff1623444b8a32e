#!/usr/bin/python3
"""Step 4: write the trained model (build/train_state.pt) as a Hugging Face CLIPModel folder in weights/demo/:
model.safetensors (F32, HF names, spec section 7.3), config.json, preprocessor_config.json, tokenizer_config.json,
special_tokens_map.json. Checks the round trip through clip_reference.hf_to_openai.

    /usr/bin/python3 weights/demo/tools/export.py"""
import json
import os

import torch

import common as c


def openai_to_hf(sd):
    """OpenAI names -> HF CLIPModel names: in_proj split into q/k/v, the two projections transposed (spec section 7.3)."""
    out = {}

    def tower(oa_prefix, hf_prefix):
        i = 0
        while f"{oa_prefix}resblocks.{i}.attn.in_proj_weight" in sd:
            o, h = f"{oa_prefix}resblocks.{i}", f"{hf_prefix}.encoder.layers.{i}"
            for s in ("weight", "bias"):
                for p, chunk in zip("qkv", sd[f"{o}.attn.in_proj_{s}"].chunk(3, 0)):
                    out[f"{h}.self_attn.{p}_proj.{s}"] = chunk
                out[f"{h}.self_attn.out_proj.{s}"] = sd[f"{o}.attn.out_proj.{s}"]
                out[f"{h}.layer_norm1.{s}"] = sd[f"{o}.ln_1.{s}"]
                out[f"{h}.mlp.fc1.{s}"] = sd[f"{o}.mlp.c_fc.{s}"]
                out[f"{h}.mlp.fc2.{s}"] = sd[f"{o}.mlp.c_proj.{s}"]
                out[f"{h}.layer_norm2.{s}"] = sd[f"{o}.ln_2.{s}"]
            i += 1

    out["text_model.embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    out["text_model.embeddings.position_embedding.weight"] = sd["positional_embedding"]
    tower("transformer.", "text_model")
    for s in ("weight", "bias"):
        out[f"text_model.final_layer_norm.{s}"] = sd[f"ln_final.{s}"]
        out[f"vision_model.pre_layrnorm.{s}"] = sd[f"visual.ln_pre.{s}"]
        out[f"vision_model.post_layernorm.{s}"] = sd[f"visual.ln_post.{s}"]
    out["text_projection.weight"] = sd["text_projection"].t()
    out["vision_model.embeddings.class_embedding"] = sd["visual.class_embedding"]
    out["vision_model.embeddings.patch_embedding.weight"] = sd["visual.conv1.weight"]
    out["vision_model.embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    tower("visual.transformer.", "vision_model")
    out["visual_projection.weight"] = sd["visual.proj"].t()
    out["logit_scale"] = sd["logit_scale"].reshape([])
    return {k: v.detach().contiguous().float() for k, v in out.items()}


def configs(vocab):
    hp = c.HP
    sot, eot = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    config = {
        "architectures": ["CLIPModel"], "model_type": "clip", "torch_dtype": "float32",
        "projection_dim": hp["embed_dim"], "logit_scale_init_value": 2.6592, "initializer_factor": 1.0,
        "text_config": {
            "model_type": "clip_text_model", "hidden_size": hp["text_width"], "intermediate_size": 4 * hp["text_width"],
            "num_attention_heads": hp["text_heads"], "num_hidden_layers": hp["text_layers"],
            "max_position_embeddings": hp["context_length"], "vocab_size": len(vocab), "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5, "projection_dim": hp["embed_dim"],
            "bos_token_id": sot, "eos_token_id": eot, "pad_token_id": eot,
        },
        "vision_config": {
            "model_type": "clip_vision_model", "hidden_size": hp["vision_width"], "intermediate_size": 4 * hp["vision_width"],
            "num_attention_heads": hp["vision_heads"], "num_hidden_layers": hp["vision_layers"],
            "image_size": hp["image_size"], "patch_size": hp["patch_size"], "num_channels": 3,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": hp["embed_dim"],
        },
    }
    preprocessor = {
        "image_processor_type": "CLIPImageProcessor", "feature_extractor_type": "CLIPFeatureExtractor",
        "do_convert_rgb": True, "do_resize": True, "size": {"shortest_edge": c.IMAGE_SIZE}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": c.IMAGE_SIZE, "width": c.IMAGE_SIZE},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": c.MEAN, "image_std": c.STD,
    }
    tokenizer = {
        "tokenizer_class": "CLIPTokenizer", "model_max_length": hp["context_length"], "do_lower_case": True,
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
    }
    special = {k: tokenizer[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    return config, preprocessor, tokenizer, special


def dump(name, obj):
    with open(os.path.join(c.DEMO, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main():
    sd = torch.load(os.path.join(c.BUILD, "train_state.pt"))
    hf = openai_to_hf(sd)
    c.ref.write_safetensors(os.path.join(c.DEMO, "model.safetensors"),
                            {k: ("F32", list(v.shape), c.ref.encode_tensor(v.numpy(), "F32")) for k, v in hf.items()})
    with open(os.path.join(c.DEMO, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    for name, obj in zip(("config.json", "preprocessor_config.json", "tokenizer_config.json", "special_tokens_map.json"), configs(vocab)):
        dump(name, obj)
    back = c.ref.hf_to_openai(c.ref.read_safetensors(os.path.join(c.DEMO, "model.safetensors")))
    expected = {k: v for k, v in sd.items()}
    assert sorted(back) == sorted(expected), set(back) ^ set(expected)
    for k in expected:
        assert torch.equal(back[k].reshape(expected[k].shape), expected[k].float()), k
    size = os.path.getsize(os.path.join(c.DEMO, "model.safetensors"))
    print(f"model.safetensors: {len(hf)} tensors, {sum(v.numel() for v in hf.values()):,} parameters, {size:,} bytes; round trip exact")


if __name__ == "__main__":
    main()
