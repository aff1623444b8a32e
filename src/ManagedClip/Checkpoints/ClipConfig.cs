using ManagedClip.Kernels;

namespace ManagedClip.Checkpoints;

public enum CheckpointFormat { OpenAI, HuggingFace }

public enum VisionArchitecture { VisionTransformer, ModifiedResNet }

/// <summary>Where the text tower takes its pooled state (<c>clip/model.py CLIP.encode_text</c>, transformers <c>CLIPTextTransformer.forward</c>): the first maximal id (OpenAI, and HF's legacy path), or the first occurrence of the end-of-text id.</summary>
public enum TextPooling { ArgMax, FirstEndOfText }

/// <summary>
/// The image tower's hyper-parameters, common to both architectures: <see cref="VisionTransformerConfig"/> and
/// <see cref="ModifiedResNetConfig"/> hold the rest. Both end in attention over <see cref="Tokens"/> = G² + 1 tokens.
/// </summary>
public abstract record VisionConfig(int Width, int Layers, int Heads, int ImageSize, Activation Activation)
{
    public abstract VisionArchitecture Architecture { get; }

    /// <summary>G: the side of the token grid the final attention sees.</summary>
    public abstract int GridSize { get; }

    /// <summary>Width of one attention head.</summary>
    public abstract int HeadDim { get; }

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

    public override VisionArchitecture Architecture => VisionArchitecture.VisionTransformer;
    public override int GridSize => ImageSize / PatchSize;
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

    public override VisionArchitecture Architecture => VisionArchitecture.ModifiedResNet;
    public override int GridSize => ImageSize / Reduction;
    public override int HeadDim => PoolWidth / Heads;
}

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
