using ManagedClip.Kernels;

namespace ManagedClip.Checkpoints;

/// <summary>The tensor naming a checkpoint uses.</summary>
public enum CheckpointFormat
{
    /// <summary>OpenAI's <c>clip/model.py</c> names (also open_clip's), e.g. <c>visual.transformer.resblocks.0.attn.in_proj_weight</c>.</summary>
    OpenAI,
    /// <summary>Hugging Face transformers' <c>CLIPModel</c> names, e.g. <c>vision_model.encoder.layers.0.self_attn.q_proj.weight</c>.</summary>
    HuggingFace,
}

/// <summary>The image tower's kind.</summary>
public enum VisionArchitecture
{
    /// <summary>A vision transformer (ViT-B/32, ViT-L/14, ...): <see cref="VisionTransformerConfig"/>.</summary>
    VisionTransformer,
    /// <summary>OpenAI's ModifiedResNet (RN50, RN101, RN50x4, ...): <see cref="ModifiedResNetConfig"/>.</summary>
    ModifiedResNet,
}

/// <summary>Where the text tower takes its pooled state (<c>clip/model.py CLIP.encode_text</c>, transformers <c>CLIPTextTransformer.forward</c>): the first maximal id (OpenAI, and HF's legacy path), or the first occurrence of the end-of-text id.</summary>
public enum TextPooling
{
    /// <summary>The position of the largest token id (end-of-text is the largest in OpenAI's vocabulary).</summary>
    ArgMax,
    /// <summary>The position of the first <see cref="TextConfig.EndOfTextId"/>.</summary>
    FirstEndOfText,
}

/// <summary>
/// The image tower's hyper-parameters, common to both architectures: <see cref="VisionTransformerConfig"/> and
/// <see cref="ModifiedResNetConfig"/> hold the rest. Both end in attention over <see cref="Tokens"/> = G² + 1 tokens.
/// </summary>
public abstract record VisionConfig(int Width, int Layers, int Heads, int ImageSize, Activation Activation)
{
    /// <summary>Which tower this is: a ViT or a ModifiedResNet.</summary>
    public abstract VisionArchitecture Architecture { get; }

    /// <summary>G: the side of the token grid the final attention sees.</summary>
    public abstract int GridSize { get; }

    /// <summary>Width of one attention head.</summary>
    public abstract int HeadDim { get; }

    /// <summary>Tokens the final attention sees: the G × G grid plus the class (or mean-pooled) token.</summary>
    public int Tokens => GridSize * GridSize + 1;
}

/// <summary>A ViT (<c>clip/model.py VisionTransformer</c>): patches of <see cref="PatchSize"/>, <see cref="VisionConfig.Layers"/> pre-LN blocks of <see cref="VisionConfig.Width"/>.</summary>
public sealed record VisionTransformerConfig(int Width, int Layers, int Heads, int MlpWidth, int PatchSize, int ImageSize, Activation Activation, float LayerNormEpsilon)
    : VisionConfig(Width, Layers, Heads, ImageSize, Activation)
{
    /// <summary>MLP width / model width in every OpenAI checkpoint (<c>mlp_ratio</c> 4).</summary>
    public const int MlpRatio = 4;

    /// <summary>LayerNorm ε of every OpenAI checkpoint (PyTorch's default).</summary>
    public const float DefaultLayerNormEpsilon = 1e-5f;

    /// <inheritdoc/>
    public override VisionArchitecture Architecture => VisionArchitecture.VisionTransformer;
    /// <summary>Patches per side: <see cref="VisionConfig.ImageSize"/> / <see cref="PatchSize"/>.</summary>
    public override int GridSize => ImageSize / PatchSize;
    /// <summary><see cref="VisionConfig.Width"/> / <see cref="VisionConfig.Heads"/>.</summary>
    public override int HeadDim => Width / Heads;
}

/// <summary>
/// A ModifiedResNet (<c>clip/model.py ModifiedResNet</c>): <see cref="VisionConfig.Width"/> is the stem width, <see cref="Blocks"/>
/// the bottlenecks of the four stages (<see cref="VisionConfig.Layers"/> their sum), <see cref="VisionConfig.Heads"/> the attention pool's heads.
/// </summary>
public sealed record ModifiedResNetConfig(int Width, int[] Blocks, int Heads, int ImageSize)
    : VisionConfig(Width, Blocks.Sum(), Heads, ImageSize, Activation.Relu)
{
    /// <summary>The stem (stride 2, then a 2×2 pool) and stages 2–4 (stride 2 each) shrink the image 32×.</summary>
    public const int Reduction = 32;

    /// <summary>Channels of the last stage, the attention pool's width: <see cref="VisionConfig.Width"/> · 8 planes · expansion 4.</summary>
    public int PoolWidth => Reduction * Width;

    /// <inheritdoc/>
    public override VisionArchitecture Architecture => VisionArchitecture.ModifiedResNet;
    /// <summary>Side of the last stage's feature map: <see cref="VisionConfig.ImageSize"/> / 32.</summary>
    public override int GridSize => ImageSize / Reduction;
    /// <summary><see cref="PoolWidth"/> / <see cref="VisionConfig.Heads"/>.</summary>
    public override int HeadDim => PoolWidth / Heads;
}

/// <summary>The text tower's hyper-parameters (<c>clip/model.py CLIP</c>'s transformer, or transformers' <c>CLIPTextModel</c>).</summary>
/// <param name="Width">Model width (512 for ViT-B/32).</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="Heads">Attention heads per block.</param>
/// <param name="MlpWidth">Hidden width of each block's MLP.</param>
/// <param name="ContextLength">Tokens per text, 77 in every released model.</param>
/// <param name="VocabSize">Rows of the token embedding (49408 for OpenAI's BPE).</param>
/// <param name="Activation">The MLP's activation (QuickGELU in OpenAI's checkpoints).</param>
/// <param name="LayerNormEpsilon">The LayerNorms' ε.</param>
/// <param name="Pooling">Which token's state becomes the text's features.</param>
/// <param name="EndOfTextId">The end-of-text token id (49407 for OpenAI's BPE).</param>
public sealed record TextConfig(
    int Width,
    int Layers,
    int Heads,
    int MlpWidth,
    int ContextLength,
    int VocabSize,
    Activation Activation,
    float LayerNormEpsilon,
    TextPooling Pooling,
    int EndOfTextId)
{
    /// <summary>Width of one attention head: <see cref="Width"/> / <see cref="Heads"/>.</summary>
    public int HeadDim => Width / Heads;
}

/// <summary>Everything the model code needs to know about a checkpoint, inferred from its tensor shapes (and config.json for Hugging Face folders).</summary>
public sealed record ClipConfig(int EmbedDim, VisionConfig Vision, TextConfig Text)
{
    /// <summary>The OpenAI name when the shapes are one of the released models (ViT-B/32, RN50x4, ViT-L/14@336px), else a description.</summary>
    public string ModelName
    {
        get
        {
            if (Vision is VisionTransformerConfig v)
            {
                string size = (v.Width, v.Layers) switch { (768, 12) => "B", (1024, 24) => "L", (1280, 32) => "H", _ => "" };
                return size.Length > 0
                    ? $"ViT-{size}/{v.PatchSize}{(v.ImageSize != 224 ? $"@{v.ImageSize}px" : "")}"
                    : $"ViT (width {v.Width}, {v.Layers} layers, patch {v.PatchSize}, {v.ImageSize} px)";
            }
            var r = (ModifiedResNetConfig)Vision;
            string? name = string.Join(",", r.Blocks) switch
            {
                "3,4,6,3" when r.Width == 64 => "RN50",
                "3,4,23,3" when r.Width == 64 => "RN101",
                "4,6,10,6" when r.Width == 80 => "RN50x4",
                "6,8,18,8" when r.Width == 96 => "RN50x16",
                "3,15,36,10" when r.Width == 128 => "RN50x64",
                _ => null,
            };
            return name ?? $"ModifiedResNet (width {r.Width}, blocks {string.Join(",", r.Blocks)}, {r.ImageSize} px)";
        }
    }
}
