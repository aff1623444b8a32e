using System.Buffers.Binary;
using System.Text;
using ManagedClip.Checkpoints;
using ManagedClip.Tests.Support;

namespace ManagedClip.Tests.Checkpoints;

/// <summary>
/// The nine released CLIP architectures (shared/docs/clip-spec.md §1, §11) in the OpenAI layout: hyper-parameters inferred from the
/// shapes alone, and the parameter count equal to the published one. The files are sparse (a real header, a data
/// section of holes), so even RN50x64 costs no disk and no reading.
/// </summary>
public sealed class OfficialArchitecturesTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-official-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    public static TheoryData<string, int, int, int, int, int, int[], int, int, long> Models => new()
    {
        // name, R, patch (0 = ResNet), width, layers, heads, ResNet blocks, embed, text width, parameters (shared/docs/clip-spec.md §11)
        { "RN50", 224, 0, 64, 16, 32, [3, 4, 6, 3], 1024, 512, 102_007_137 },
        { "RN101", 224, 0, 64, 33, 32, [3, 4, 23, 3], 512, 512, 119_688_033 },
        { "RN50x4", 288, 0, 80, 26, 40, [4, 6, 10, 6], 640, 640, 178_300_601 },
        { "RN50x16", 384, 0, 96, 40, 48, [6, 8, 18, 8], 768, 768, 290_979_217 },
        { "RN50x64", 448, 0, 128, 64, 64, [3, 15, 36, 10], 1024, 1024, 623_258_305 },
        { "ViT-B/32", 224, 32, 768, 12, 12, [], 512, 512, 151_277_313 },
        { "ViT-B/16", 224, 16, 768, 12, 12, [], 512, 512, 149_620_737 },
        { "ViT-L/14", 224, 14, 1024, 24, 16, [], 768, 768, 427_616_513 },
        { "ViT-L/14@336px", 336, 14, 1024, 24, 16, [], 768, 768, 427_944_193 },
    };

    [Theory, MemberData(nameof(Models))]
    public void ShapesAloneGiveTheArchitecture(string name, int resolution, int patch, int width, int layers, int heads, int[] blocks, int embed, int textWidth, long parameters)
    {
        var spec = new CaseSpec
        {
            Name = name, Layout = "openai", DType = "F16", Arch = patch > 0 ? "vit" : "resnet",
            EmbedDim = embed, ImageResolution = resolution, VisionPatchSize = patch, VisionWidth = width,
            VisionLayers = patch > 0 ? layers : 0, VisionStageBlocks = blocks, VisionHeads = heads, VisionMlpWidth = 4 * width,
            ContextLength = 77, VocabSize = 49408, TransformerWidth = textWidth, TransformerLayers = 12,
            TransformerHeads = textWidth / 64, TextMlpWidth = 4 * textWidth, Texts = [],
        };
        string path = Path.Combine(_folder, "model.safetensors");
        WriteSparse(path, SyntheticCheckpoint.Tensors(spec));

        using var checkpoint = Checkpoint.Open(path);
        var v = checkpoint.Config.Vision;
        var t = checkpoint.Config.Text;
        Assert.Equal(patch > 0 ? VisionArchitecture.VisionTransformer : VisionArchitecture.ModifiedResNet, v.Architecture);
        Assert.Equal((resolution, width, layers, heads), (v.ImageSize, v.Width, v.Layers, v.Heads));
        if (patch > 0) Assert.Equal(patch, Assert.IsType<VisionTransformerConfig>(v).PatchSize);
        else Assert.Equal(blocks, Assert.IsType<ModifiedResNetConfig>(v).Blocks);
        Assert.Equal((embed, textWidth, 12, textWidth / 64, 77, 49408), (checkpoint.Config.EmbedDim, t.Width, t.Layers, t.Heads, t.ContextLength, t.VocabSize));
        Assert.Equal(parameters, checkpoint.ParameterCount);
        Assert.Equal(name, checkpoint.Config.ModelName);   // the OpenAI name, next to the config (clip.available_models())
    }

    /// <summary>A safetensors file with the tensors' header and an unwritten (sparse) data section.</summary>
    static void WriteSparse(string path, IReadOnlyList<SyntheticTensor> tensors)
    {
        var entries = tensors.Select(t => new SafetensorsEntry(t.Name, t.Kind == "float" ? "F16" : "I64", t.Shape, () => []))
            .OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        byte[] header = Encoding.UTF8.GetBytes(SafetensorsWriter.BuildHeader(entries));
        using var file = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        file.Write(length);
        file.Write(header);
        file.SetLength(8 + header.Length + entries.Sum(e => e.ByteLength));
    }
}
