using System.Text.Json;

namespace ManagedClip.Tests.Support;

/// <summary>One entry of tests/fixtures/synthetic/cases.json (written by make_synthetic.py).</summary>
public sealed class CaseSpec
{
    public required string Name { get; init; }

    /// <summary>"openai" or "hf".</summary>
    public required string Layout { get; init; }

    /// <summary>Stored dtype of every float tensor: "F32", "F16" or "BF16".</summary>
    public required string DType { get; init; }

    /// <summary>"vit" or "resnet".</summary>
    public required string Arch { get; init; }

    /// <summary>True for the full-size ViT-B/32 and RN50 cases (hundreds of MB when written).</summary>
    public bool FullSize { get; init; }

    public int EmbedDim { get; init; }

    public int ImageResolution { get; init; }

    /// <summary>ViT patch size (0 for ResNets).</summary>
    public int VisionPatchSize { get; init; }

    public int VisionWidth { get; init; }

    /// <summary>ViT layer count (0 for ResNets).</summary>
    public int VisionLayers { get; init; }

    /// <summary>ResNet blocks per stage (empty for ViTs).</summary>
    public int[] VisionStageBlocks { get; init; } = [];

    /// <summary>ViT heads, or attention-pool heads for ResNets.</summary>
    public int VisionHeads { get; init; }

    /// <summary>ViT MLP hidden width (0 for ResNets).</summary>
    public int VisionMlpWidth { get; init; }

    /// <summary>"quick_gelu" or "gelu" ("" for ResNets).</summary>
    public string VisionAct { get; init; } = "";

    public int ContextLength { get; init; }

    public int VocabSize { get; init; }

    public int TransformerWidth { get; init; }

    public int TransformerLayers { get; init; }

    public int TransformerHeads { get; init; }

    public int TextMlpWidth { get; init; }

    public string TextAct { get; init; } = "quick_gelu";

    public int NumImages { get; init; }

    public required IReadOnlyList<string> Texts { get; init; }

    /// <summary>HF only: the config.json content.</summary>
    public JsonElement? HfConfig { get; init; }

    /// <summary>HF only: whether the file carries int64 position_ids buffers.</summary>
    public bool HfPositionIds { get; init; }

    public override string ToString() => Name;

    public static CaseSpec FromJson(JsonElement e)
    {
        JsonElement layers = e.GetProperty("vision_layers");
        bool hf = e.GetProperty("layout").GetString() == "hf";
        return new CaseSpec
        {
            Name = e.GetProperty("name").GetString()!,
            Layout = e.GetProperty("layout").GetString()!,
            DType = e.GetProperty("dtype").GetString()!,
            Arch = e.GetProperty("arch").GetString()!,
            FullSize = e.GetProperty("full_size").GetBoolean(),
            EmbedDim = e.GetProperty("embed_dim").GetInt32(),
            ImageResolution = e.GetProperty("image_resolution").GetInt32(),
            VisionPatchSize = IntOrZero(e, "vision_patch_size"),
            VisionWidth = e.GetProperty("vision_width").GetInt32(),
            VisionLayers = layers.ValueKind == JsonValueKind.Number ? layers.GetInt32() : 0,
            VisionStageBlocks = layers.ValueKind == JsonValueKind.Array ? layers.EnumerateArray().Select(x => x.GetInt32()).ToArray() : [],
            VisionHeads = e.GetProperty("vision_heads").GetInt32(),
            VisionMlpWidth = IntOrZero(e, "vision_mlp_width"),
            VisionAct = StringOrEmpty(e, "vision_act"),
            ContextLength = e.GetProperty("context_length").GetInt32(),
            VocabSize = e.GetProperty("vocab_size").GetInt32(),
            TransformerWidth = e.GetProperty("transformer_width").GetInt32(),
            TransformerLayers = e.GetProperty("transformer_layers").GetInt32(),
            TransformerHeads = e.GetProperty("transformer_heads").GetInt32(),
            TextMlpWidth = e.GetProperty("text_mlp_width").GetInt32(),
            TextAct = StringOrEmpty(e, "text_act"),
            NumImages = e.GetProperty("num_images").GetInt32(),
            Texts = e.GetProperty("texts").EnumerateArray().Select(x => x.GetString()!).ToArray(),
            HfConfig = hf ? e.GetProperty("hf_config").Clone() : null,
            HfPositionIds = e.TryGetProperty("hf_position_ids", out var pi) && pi.ValueKind == JsonValueKind.True,
        };
    }

    private static int IntOrZero(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : 0;

    private static string StringOrEmpty(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
}

/// <summary>A probe recorded by make_synthetic.py for one generated tensor.</summary>
public sealed record TensorProbe(string Name, int[] Shape, string Rule, float Scale, float Offset,
    string Sha256F32, string Sha256F16, string Sha256BF16, float[] FirstValues);

/// <summary>Hashes the C# twin must reproduce.</summary>
public sealed record CaseProbes(IReadOnlyList<TensorProbe> Tensors, string FileSha256, long FileSize, int TensorCount,
    string ImagesSha256F32, float[] ImagesFirstValues);

/// <summary>Contents of tests/fixtures/synthetic/&lt;case&gt;.expected.json (reference outputs, not normalised).</summary>
public sealed record ExpectedOutputs(
    string Name,
    float[][] ImageFeatures,
    float[][] TextFeatures,
    int[][] Ids,
    float LogitScale,
    CaseProbes Probes,
    double[][]? ImageFeaturesF64,
    double[][]? TextFeaturesF64,
    double? ImageF32VsF64RelativeError);

/// <summary>Locates and loads the committed synthetic fixtures.</summary>
public static class SyntheticCases
{
    private static readonly Lazy<string> Dir = new(FindDir);

    /// <summary>tests/fixtures/synthetic of the repository containing the test binaries.</summary>
    public static string FixtureDirectory => Dir.Value;

    private static string FindDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "tests", "fixtures", "synthetic");
            if (File.Exists(Path.Combine(candidate, "cases.json")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"tests/fixtures/synthetic/cases.json not found above {AppContext.BaseDirectory}");
    }

    public static IReadOnlyList<CaseSpec> LoadAll()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(FixtureDirectory, "cases.json")));
        return doc.RootElement.EnumerateArray().Select(CaseSpec.FromJson).ToArray();
    }

    public static CaseSpec Load(string name) =>
        LoadAll().SingleOrDefault(c => c.Name == name) ?? throw new KeyNotFoundException($"no synthetic case {name}");

    /// <summary>Names for xUnit MemberData.</summary>
    public static IEnumerable<object[]> Names(bool includeFullSize) =>
        LoadAll().Where(c => includeFullSize || !c.FullSize).Select(c => new object[] { c.Name });

    public static ExpectedOutputs LoadExpected(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(FixtureDirectory, name + ".expected.json")));
        var r = doc.RootElement;
        var p = r.GetProperty("probes");
        var probes = new CaseProbes(
            p.GetProperty("tensors").EnumerateArray().Select(t => new TensorProbe(
                t.GetProperty("name").GetString()!,
                t.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                t.GetProperty("rule").GetString()!,
                (float)t.GetProperty("scale").GetDouble(),
                (float)t.GetProperty("offset").GetDouble(),
                t.GetProperty("sha256_f32").GetString()!,
                t.GetProperty("sha256_f16").GetString()!,
                t.GetProperty("sha256_bf16").GetString()!,
                Floats(t.GetProperty("first_values")))).ToArray(),
            p.GetProperty("file_sha256").GetString()!,
            p.GetProperty("file_size").GetInt64(),
            p.GetProperty("tensor_count").GetInt32(),
            p.GetProperty("images_sha256_f32").GetString()!,
            Floats(p.GetProperty("images_first_values")));
        return new ExpectedOutputs(
            r.GetProperty("name").GetString()!,
            Matrix(r.GetProperty("image_features")),
            Matrix(r.GetProperty("text_features")),
            r.GetProperty("ids").EnumerateArray().Select(row => row.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray(),
            (float)r.GetProperty("logit_scale").GetDouble(),
            probes,
            r.TryGetProperty("image_features_f64", out var f64) ? Matrix64(f64) : null,
            r.TryGetProperty("text_features_f64", out var t64) ? Matrix64(t64) : null,
            r.TryGetProperty("image_f32_vs_f64_relative_error", out var re) ? re.GetDouble() : null);
    }

    private static float[] Floats(JsonElement a) => a.EnumerateArray().Select(x => (float)x.GetDouble()).ToArray();

    private static float[][] Matrix(JsonElement a) => a.EnumerateArray().Select(Floats).ToArray();

    private static double[][] Matrix64(JsonElement a) =>
        a.EnumerateArray().Select(row => row.EnumerateArray().Select(x => x.GetDouble()).ToArray()).ToArray();
}
