using System.Text.Json;
using ManagedClip.Checkpoints;
using ManagedClip.Imaging;
using ManagedClip.Tests.Support;

namespace ManagedClip.Tests.Checkpoints;

/// <summary>Layouts, sharding and the errors a checkpoint can earn: each names the file and the tensor.</summary>
public sealed class CheckpointTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-ckpt-").FullName;
    static string Vit => TestData.ReferenceModel("vit-tiny-a");
    static string VitHf => TestData.ReferenceModel("vit-tiny-a-hf");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    static SafetensorsEntry Keep(SafetensorsFile file, TensorEntry entry) => CheckpointRewriter.Keep(file, entry);

    /// <summary>Copies a reference checkpoint folder, letting a test drop, rename or reshape its tensors.</summary>
    string RewriteWith(string sourceFolder, string name, Func<SafetensorsFile, TensorEntry, SafetensorsEntry?> change) =>
        CheckpointRewriter.Rewrite(sourceFolder, Path.Combine(_folder, name), change);

    [Theory]
    [InlineData("visual.transformer.resblocks.1.mlp.c_fc.bias")]
    [InlineData("ln_final.weight")]
    [InlineData("visual.proj")]
    [InlineData("token_embedding.weight")]
    public void MissingTensorIsNamed(string missing)
    {
        string folder = RewriteWith(Vit, "missing", (file, e) => e.Name == missing ? null : Keep(file, e));
        var error = Assert.Throws<CheckpointException>(() => ClipModel.Load(folder));
        Assert.Contains(missing, error.Message);
        Assert.Contains("model.safetensors", error.Message);
    }

    [Fact]
    public void MissingHuggingFaceTensorIsNamedByItsHuggingFaceName()
    {
        const string missing = "vision_model.encoder.layers.1.self_attn.k_proj.weight";
        string folder = RewriteWith(VitHf, "missing-hf", (file, e) => e.Name == missing ? null : Keep(file, e));
        var error = Assert.Throws<CheckpointException>(() => ClipModel.Load(folder));
        Assert.Contains("vision_model.encoder.layers.1.self_attn", error.Message);
    }

    [Fact]
    public void MisShapedTensorNamesExpectedAndFoundShapes()
    {
        const string name = "transformer.resblocks.0.mlp.c_proj.weight"; // [128, 512] stored
        string folder = RewriteWith(Vit, "misshaped", (file, e) =>
        {
            var kept = Keep(file, e);
            return e.Name == name ? kept with { Shape = [512, 128] } : kept;
        });
        var error = Assert.Throws<CheckpointException>(() => ClipModel.Load(folder));
        Assert.Contains(name, error.Message);
        Assert.Contains("[512, 128]", error.Message);
        Assert.Contains("expected [128, 512]", error.Message);
    }

    [Fact]
    public void UnknownLayoutIsRefused()
    {
        string path = Path.Combine(_folder, "other.safetensors");
        SafetensorsWriter.Write(path, [new SafetensorsEntry("encoder.layer.0.weight", "F32", [2], () => new byte[8])]);
        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(path));
        Assert.Contains("unknown checkpoint layout", error.Message);
        Assert.Contains("encoder.layer.0.weight", error.Message);
    }

    [Fact]
    public void HuggingFaceWeightsWithoutConfigAreRefused()
    {
        string folder = Path.Combine(_folder, "no-config");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(VitHf, "model.safetensors"), Path.Combine(folder, "model.safetensors"));
        Assert.Contains("config.json", Assert.Throws<CheckpointException>(() => Checkpoint.Open(folder)).Message);
    }

    [Fact]
    public void ConfigThatDisagreesWithTheTensorsIsRefused()
    {
        string folder = RewriteWith(VitHf, "bad-config", Keep);
        string config = Path.Combine(folder, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"patch_size\": 16", "\"patch_size\": 8"));
        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(folder));
        Assert.Contains("patch_size", error.Message);
    }

    [Fact]
    public void FolderWithoutCheckpointSaysWhatItLookedFor()
    {
        var error = Assert.Throws<CheckpointException>(() => Checkpoint.Open(_folder));
        Assert.Contains("model.safetensors", error.Message);
        Assert.Contains(_folder, error.Message);
        Assert.Throws<CheckpointException>(() => Checkpoint.Open(Path.Combine(_folder, "nope.safetensors")));
    }

    [Fact]
    public void ShardedCheckpointLoadsAndGivesTheSameFeatures()
    {
        // Split vit-tiny-a in two shards by name with a model.safetensors.index.json, as HF writes them.
        string folder = Path.Combine(_folder, "sharded");
        Directory.CreateDirectory(folder);
        var weightMap = new Dictionary<string, string>();
        using (var source = SafetensorsFile.Open(Path.Combine(Vit, "model.safetensors")))
        {
            var groups = source.Tensors.Values.GroupBy(e => e.Name.StartsWith("visual.", StringComparison.Ordinal) ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
            foreach (var group in groups)
            {
                SafetensorsWriter.Write(Path.Combine(folder, group.Key), group.Select(e => Keep(source, e)).ToList());
                foreach (var e in group) weightMap[e.Name] = group.Key;
            }
        }
        File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"),
            JsonSerializer.Serialize(new Dictionary<string, object> { ["metadata"] = new Dictionary<string, object>(), ["weight_map"] = weightMap }, IndexJsonContext.Default.DictionaryStringObject));

        var (pixels, shape) = NpyFile.Read(Path.Combine(Vit, "random_input.npy"));
        using var whole = ClipModel.Load(Vit);
        using var sharded = ClipModel.Load(folder);
        using (var checkpoint = Checkpoint.Open(folder)) Assert.Equal(2, checkpoint.Files.Count);
        Assert.Equal(whole.EncodeImages(pixels, shape[0]), sharded.EncodeImages(pixels, shape[0]));

        // An index naming a shard that lacks the tensor is refused.
        File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"), """{"weight_map": {"visual.proj": "model-00002-of-00002.safetensors"}}""");
        Assert.Contains("visual.proj", Assert.Throws<CheckpointException>(() => Checkpoint.Open(folder)).Message);
    }

    [Fact]
    public void FolderOfSymbolicLinksLoadsAsTheFilesThemselves()
    {
        // The Hugging Face cache's snapshot folders hold symbolic links into blobs/: every file is a link.
        string hf = TestData.ReferenceModel("vit-tiny-a-hf");
        string folder = Path.Combine(_folder, "snapshot");
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(hf))
            File.CreateSymbolicLink(Path.Combine(folder, Path.GetFileName(file)), file);

        var (pixels, shape) = NpyFile.Read(Path.Combine(hf, "random_input.npy"));
        using var direct = ClipModel.Load(hf);
        using var linked = ClipModel.Load(folder);
        Assert.Equal(direct.EncodeImages(pixels, shape[0]), linked.EncodeImages(pixels, shape[0]));
        Assert.Equal(direct.EncodeTexts(["a photo of a cat"]), linked.EncodeTexts(["a photo of a cat"]));
        Assert.Equal(direct.Fingerprint, linked.Fingerprint);
    }

    [Fact]
    public void HyperParametersAreInferredFromShapes()
    {
        using var openAi = Checkpoint.Open(Vit);
        var c = openAi.Config;
        Assert.Equal((VisionArchitecture.VisionTransformer, 128, 2, 2, 16, 64), (c.Vision.Architecture, c.Vision.Width, c.Vision.Layers, c.Vision.Heads, c.Vision.PatchSize, c.Vision.ImageSize));
        Assert.Equal((128, 2, 2, 77, 49408, 64), (c.Text.Width, c.Text.Layers, c.Text.Heads, c.Text.ContextLength, c.Text.VocabSize, c.EmbedDim));
        using var hf = Checkpoint.Open(VitHf);
        Assert.Equal(c, hf.Config with { Text = hf.Config.Text with { Pooling = c.Text.Pooling, EndOfTextId = c.Text.EndOfTextId } });
        Assert.Equal(TensorDType.F16, hf.StorageDType);
        Assert.Equal(openAi.ParameterCount, hf.ParameterCount);
    }

    [Fact]
    public void ConcurrentCallsGiveTheSameFeaturesAndDisposeReleasesTheFiles()
    {
        var (pixels, shape) = NpyFile.Read(Path.Combine(Vit, "random_input.npy"));
        string copy = RewriteWith(Vit, "disposable", Keep);
        var model = ClipModel.Load(copy);
        var expected = model.EncodeImages(pixels, shape[0]);
        var ids = new[] { new[] { 49406, 320, 2368, 49407 } };
        var expectedText = model.EncodeTokens(ids);
        Parallel.For(0, 16, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            if (i % 2 == 0) Assert.Equal(expected, model.EncodeImages(pixels, shape[0]));
            else Assert.Equal(expectedText, model.EncodeTokens(ids));
        });
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.EncodeImages(pixels, shape[0]));
        File.Delete(Path.Combine(copy, "model.safetensors")); // the mapping is gone: nothing holds the file
        Directory.Delete(copy, recursive: true);
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, object>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class IndexJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
