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
        Assert.Equal((VisionArchitecture.VisionTransformer, 128, 2, 2, 16, 64), (c.Vision.Architecture, c.Vision.Width, c.Vision.Layers, c.Vision.Heads, ((VisionTransformerConfig)c.Vision).PatchSize, c.Vision.ImageSize));
        Assert.Equal((128, 2, 2, 77, 49408, 64), (c.Text.Width, c.Text.Layers, c.Text.Heads, c.Text.ContextLength, c.Text.VocabSize, c.EmbedDim));
        using var hf = Checkpoint.Open(VitHf);
        Assert.Equal(c, hf.Config with { Text = hf.Config.Text with { Pooling = c.Text.Pooling, EndOfTextId = c.Text.EndOfTextId } });
        Assert.Equal(TensorDType.F16, hf.StorageDType);
        Assert.Equal(openAi.ParameterCount, hf.ParameterCount);
    }

    /// <summary>A rewritten reference model whose one tensor is replaced by an entry of another shape (data zeroed to fit).</summary>
    string WithShape(string sourceFolder, string folderName, string tensor, int[] shape) =>
        RewriteWith(sourceFolder, folderName, (file, e) =>
        {
            var kept = Keep(file, e);
            if (e.Name != tensor) return kept;
            var resized = kept with { Shape = shape };
            return resized with { Bytes = () => new byte[resized.ByteLength] };
        });

    /// <summary>Loading fails with a CheckpointException naming the file and every given detail; nothing else escapes.</summary>
    static CheckpointException LoadFails(string path, string file, params string[] details)
    {
        var error = Assert.Throws<CheckpointException>(() => { using var _ = ClipModel.Load(path); });
        Assert.Contains(file, error.Message);
        foreach (var detail in details) Assert.Contains(detail, error.Message);
        return error;
    }

    [Theory]
    [InlineData("ln_final.weight")]
    [InlineData("positional_embedding")]
    [InlineData("visual.positional_embedding")]
    [InlineData("text_projection")]
    [InlineData("token_embedding.weight")]
    [InlineData("visual.conv1.weight")]
    public void ScalarShapeWhereConfigInferenceNeedsDimensionsIsNamed(string tensor) =>
        LoadFails(WithShape(Vit, "scalar", tensor, []), "model.safetensors", tensor, "[]");

    [Theory]
    [InlineData("text_model.embeddings.token_embedding.weight")]
    [InlineData("text_model.embeddings.position_embedding.weight")]
    [InlineData("vision_model.embeddings.patch_embedding.weight")]
    [InlineData("vision_model.embeddings.position_embedding.weight")]
    public void ScalarHuggingFaceEmbeddingIsNamed(string tensor) =>
        LoadFails(WithShape(VitHf, "scalar-hf", tensor, []), "model.safetensors", tensor, "[]");

    [Fact]
    public void ScalarResNetShapesAreNamed()
    {
        string rn = TestData.ReferenceModel("rn-tiny-a");
        LoadFails(WithShape(rn, "rn-stem", "visual.layer1.0.conv1.weight", []), "model.safetensors", "visual.layer1.0.conv1.weight");
        LoadFails(WithShape(rn, "rn-pool", "visual.attnpool.positional_embedding", []), "model.safetensors", "visual.attnpool.positional_embedding");
    }

    [Theory]
    [InlineData(new[] { 128, 3, 0, 0 })]
    [InlineData(new[] { 0, 3, 16, 16 })]
    [InlineData(new[] { 128, 3, 16, 8 })]
    public void ZeroOrNonSquarePatchIsNamed(int[] shape)
    {
        LoadFails(WithShape(Vit, "conv1", "visual.conv1.weight", shape), "model.safetensors", "visual.conv1.weight");
        LoadFails(WithShape(VitHf, "conv1-hf", "vision_model.embeddings.patch_embedding.weight", shape), "vision_model.embeddings.patch_embedding.weight");
    }

    [Theory]
    [InlineData("transformer.resblocks.99999999999.ln_1.weight")]
    [InlineData("visual.transformer.resblocks.2147483648.ln_1.weight")]
    public void AbsurdLayerIndexIsNamed(string name)
    {
        string renamed = System.Text.RegularExpressions.Regex.Replace(name, @"\.\d+\.", ".1.");
        string folder = RewriteWith(Vit, "layer-index", (file, e) => e.Name == renamed ? Keep(file, e) with { Name = name } : Keep(file, e));
        LoadFails(folder, "model.safetensors", name);
    }

    [Theory]
    [InlineData("\"hidden_size\": 128,", "\"hidden_size\": 0,", "hidden_size")]
    [InlineData("\"num_attention_heads\": 2,", "\"num_attention_heads\": 3,", "num_attention_heads")]
    [InlineData("\"num_attention_heads\": 2,", "\"num_attention_heads\": 0,", "num_attention_heads")]
    [InlineData("\"intermediate_size\": 512,", "\"intermediate_size\": 0,", "intermediate_size")]
    [InlineData("\"layer_norm_eps\": 1e-05,", "\"layer_norm_eps\": -1e-05,", "layer_norm_eps")]
    [InlineData("\"layer_norm_eps\": 1e-05,", "\"layer_norm_eps\": 0,", "layer_norm_eps")]
    [InlineData("\"layer_norm_eps\": 1e-05,", "\"layer_norm_eps\": 1e999,", "layer_norm_eps")]
    [InlineData("\"layer_norm_eps\": 1e-05,", "\"layer_norm_eps\": \"1e-05\",", "layer_norm_eps")]
    [InlineData("\"hidden_act\": \"quick_gelu\",", "\"hidden_act\": 7,", "hidden_act")]
    [InlineData("\"hidden_act\": \"quick_gelu\",", "\"hidden_act\": null,", "hidden_act")]
    [InlineData("\"eos_token_id\": 2,", "\"eos_token_id\": 60000,", "eos_token_id")]
    public void BadConfigValueIsRefusedAtLoadNamingConfigAndKey(string original, string replacement, string key)
    {
        string folder = RewriteWith(VitHf, "bad-value", Keep);
        string config = Path.Combine(folder, "config.json");
        string text = File.ReadAllText(config);
        Assert.Contains(original, text);
        File.WriteAllText(config, text.Replace(original, replacement));
        LoadFails(folder, config, key);
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("{\"weight_map\": []}")]
    [InlineData("{\"weight_map\": {\"visual.proj\": []}}")]
    [InlineData("{\"weight_map\": {}}")]
    [InlineData("\"model.safetensors\"")]
    public void MalformedShardIndexIsNamed(string json)
    {
        string folder = RewriteWith(Vit, "bad-index", Keep);
        string index = Path.Combine(folder, "model.safetensors.index.json");
        File.WriteAllText(index, json);
        LoadFails(folder, index);
    }

    [Fact]
    public void TensorPresentWithAndWithoutModulePrefixIsRefusedNamingBoth()
    {
        string folder = RewriteWith(Vit, "module", Keep);
        string path = Path.Combine(folder, "model.safetensors");
        List<SafetensorsEntry> entries;
        using (var source = SafetensorsFile.Open(path))
        {
            entries = source.Tensors.Values.Select(e => Keep(source, e)).ToList();
            var ln = source.Tensors["ln_final.weight"];
            entries.Add(Keep(source, ln) with { Name = "module.ln_final.weight", Bytes = () => new byte[ln.ByteLength] });
        }
        SafetensorsWriter.Write(path, entries);
        LoadFails(folder, path, "'ln_final.weight'", "'module.ln_final.weight'");
    }

    [Theory]
    [InlineData("vit-tiny-a", "visual.ln_post.weight", float.NaN)]
    [InlineData("vit-tiny-a", "token_embedding.weight", float.PositiveInfinity)]
    [InlineData("rn-tiny-a", "visual.layer2.0.bn1.running_var", float.PositiveInfinity)]
    [InlineData("rn-tiny-a", "visual.bn1.running_mean", float.NegativeInfinity)]
    [InlineData("vit-tiny-a-hf", "text_model.encoder.layers.1.self_attn.k_proj.weight", float.NaN)]
    [InlineData("vit-tiny-a-hf", "visual_projection.weight", float.NegativeInfinity)]
    public void NonFiniteWeightIsRefusedAtLoadNamingTheTensor(string model, string tensor, float value)
    {
        string folder = RewriteWith(TestData.ReferenceModel(model), "non-finite", (file, e) =>
        {
            var kept = Keep(file, e);
            if (e.Name != tensor) return kept;
            var bytes = kept.Bytes();
            // The element in the middle of the tensor, in its stored dtype.
            long middle = e.ElementCount / 2;
            if (e.DType == TensorDType.F16) BitConverter.GetBytes((Half)value).CopyTo(bytes, middle * 2);
            else BitConverter.GetBytes(value).CopyTo(bytes, middle * 4);
            return kept with { Bytes = () => bytes };
        });
        LoadFails(folder, "model.safetensors", tensor, "non-finite");
    }

    [Fact]
    public void FingerprintCoversEveryByteOfLargeTensors()
    {
        // Copy the "dog" row over the "cat" row of the token embedding (a 25 MB tensor): a realistic edit that a sampled
        // fingerprint missed, while it changes what the model says about cats.
        const int Cat = 2368, Dog = 1929, Width = 128;
        string folder = RewriteWith(Vit, "dog-over-cat", (file, e) =>
        {
            var kept = Keep(file, e);
            if (e.Name != "token_embedding.weight") return kept;
            var bytes = kept.Bytes();
            Array.Copy(bytes, Dog * Width * 4, bytes, Cat * Width * 4, Width * 4);
            return kept with { Bytes = () => bytes };
        });
        using var original = ClipModel.Load(Vit);
        using var edited = ClipModel.Load(folder);
        int[] cat = [49406, Cat, 49407];
        Assert.NotEqual(original.EncodeTokens([cat])[0], edited.EncodeTokens([cat])[0]);
        Assert.NotEqual(original.Fingerprint, edited.Fingerprint);

        // A byte-identical copy keeps it.
        string copy = RewriteWith(Vit, "copy", Keep);
        using var copied = ClipModel.Load(copy);
        Assert.Equal(original.Fingerprint, copied.Fingerprint);
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
