using ManagedClip.Kernels;

namespace ManagedClip.Checkpoints;

public enum CheckpointFormat { OpenAI, HuggingFace }

public enum VisionArchitecture { VisionTransformer, ModifiedResNet }

/// <summary>Where the text tower takes its pooled state (<c>clip/model.py CLIP.encode_text</c>, transformers <c>CLIPTextTransformer.forward</c>): the first maximal id (OpenAI, and HF's legacy path), or the first occurrence of the end-of-text id.</summary>
public enum TextPooling { ArgMax, FirstEndOfText }

/// <summary>The image tower's hyper-parameters. For a ResNet, <see cref="Width"/> is the stem width and <see cref="Heads"/> the attention pool's heads.</summary>
public sealed record VisionConfig(
    VisionArchitecture Architecture,
    int Width,
    int Layers,
    int Heads,
    int MlpWidth,
    int PatchSize,
    int ImageSize,
    int[] ResNetBlocks,
    Activation Activation,
    float LayerNormEpsilon)
{
    public int HeadDim => Architecture == VisionArchitecture.VisionTransformer ? Width / Heads : 32 * Width / Heads;
    public int GridSize => Architecture == VisionArchitecture.VisionTransformer ? ImageSize / PatchSize : ImageSize / 32;
    public int Tokens => GridSize * GridSize + 1;
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
            var v = Vision;
            if (v.Architecture == VisionArchitecture.VisionTransformer)
            {
                string size = (v.Width, v.Layers) switch { (768, 12) => "B", (1024, 24) => "L", (1280, 32) => "H", _ => "" };
                return size.Length > 0
                    ? $"ViT-{size}/{v.PatchSize}{(v.ImageSize != 224 ? $"@{v.ImageSize}px" : "")}"
                    : $"ViT (width {v.Width}, {v.Layers} layers, patch {v.PatchSize}, {v.ImageSize} px)";
            }
            string? name = string.Join(",", v.ResNetBlocks) switch
            {
                "3,4,6,3" when v.Width == 64 => "RN50",
                "3,4,23,3" when v.Width == 64 => "RN101",
                "4,6,10,6" when v.Width == 80 => "RN50x4",
                "6,8,18,8" when v.Width == 96 => "RN50x16",
                "3,15,36,10" when v.Width == 128 => "RN50x64",
                _ => null,
            };
            return name ?? $"ModifiedResNet (width {v.Width}, blocks {string.Join(",", v.ResNetBlocks)}, {v.ImageSize} px)";
        }
    }
}
