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
public sealed record ClipConfig(int EmbedDim, VisionConfig Vision, TextConfig Text);
