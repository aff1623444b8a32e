using ManagedClip.Imaging;
using ManagedClip.Kernels;
using ManagedClip.Tokenization;

namespace ManagedClip.Tests.Cli;

/// <summary>The CLI contract: JSON lines per input, "error:" lines and exit codes, "--" ending options.</summary>
public sealed class CliTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-cli-").FullName;
    static string Vit => TestData.ReferenceModel("vit-tiny-a");
    static string VitHf => TestData.ReferenceModel("vit-tiny-a-hf");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void InfoReportsRuntimeSimdAndModel()
    {
        var result = CliRunner.Run("info", "--model", Vit, "--json");
        Assert.Equal(0, result.ExitCode);
        var info = Assert.Single(result.JsonLines);
        Assert.Equal("JIT", info.GetProperty("runtime").GetString());
        Assert.Equal((int)Simd.Best, info.GetProperty("vector_bits").GetInt32());
        Assert.Equal(Environment.ProcessorCount, info.GetProperty("cores").GetInt32());
        var model = info.GetProperty("model");
        Assert.Equal("openai", model.GetProperty("format").GetString());
        Assert.Equal(128, model.GetProperty("vision").GetProperty("width").GetInt32());
        Assert.Equal(16, model.GetProperty("vision").GetProperty("patch_size").GetInt32());
        Assert.Equal(64, model.GetProperty("vision").GetProperty("resolution").GetInt32());
        Assert.Equal(64, model.GetProperty("embed_dim").GetInt32());
        Assert.Equal("F32", model.GetProperty("dtype").GetString());

        var hf = CliRunner.Run("info", "--model", VitHf, "--json");
        Assert.Equal("huggingface", hf.JsonLines[0].GetProperty("model").GetProperty("format").GetString());
        Assert.Equal("F16", hf.JsonLines[0].GetProperty("model").GetProperty("dtype").GetString());
        Assert.Equal(0, CliRunner.Run("info").ExitCode);
    }

    [Fact]
    public void TokenizePrintsIdsPerTextAndDoubleDashEndsOptions()
    {
        var result = CliRunner.Run("tokenize", "--vocab", TestData.BpeVocabulary, "--json", "--", "a photo of a cat", "--json is text here");
        Assert.Equal(0, result.ExitCode);
        var lines = result.JsonLines;
        Assert.Equal(2, lines.Length);
        var tokenizer = ClipTokenizer.FromBpeFile(TestData.BpeVocabulary);
        Assert.Equal("a photo of a cat", lines[0].GetProperty("input").GetString());
        Assert.Equal(tokenizer.Encode("a photo of a cat"), lines[0].GetProperty("ids").EnumerateArray().Select(v => v.GetInt32()));
        Assert.Equal("--json is text here", lines[1].GetProperty("input").GetString());
        Assert.Equal(77, lines[1].GetProperty("ids").GetArrayLength());

        // A Hugging Face folder brings its vocab.json + merges.txt: same ids.
        var fromModel = CliRunner.Run("tokenize", "--model", VitHf, "--json", "--", "a photo of a cat");
        Assert.Equal(lines[0].GetProperty("ids").GetRawText(), fromModel.JsonLines[0].GetProperty("ids").GetRawText());
    }

    [Fact]
    public void MissingVocabularyIsAClearError() =>
        CliRunner.AssertCleanError(CliRunner.Run("tokenize", "--model", Vit, "--", "a cat"), 1, "On the command line: --vocab PATH."); // the CLI names its flag

    [Fact]
    public void EmbedTextMatchesTheReference()
    {
        using var expected = TestData.ReadJson(Path.Combine(Vit, "expected.json"));
        var texts = expected.RootElement.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).Take(8).ToArray();
        var result = CliRunner.Run(["embed-text", "--model", Vit, "--vocab", TestData.BpeVocabulary, "--raw", "--json", "--", .. texts]);
        Assert.Equal(0, result.ExitCode);
        var lines = result.JsonLines;
        Assert.Equal(texts, lines.Select(l => l.GetProperty("input").GetString()));
        var got = lines.Select(l => l.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        var reference = TestData.Rows(expected.RootElement.GetProperty("text_features")).Take(8).ToArray();
        Assert.True(TestData.RelativeError(got, reference) < 1e-4);

        // Without --raw the embedding is L2-normalized.
        var normalized = CliRunner.Run("embed-text", "--model", Vit, "--vocab", TestData.BpeVocabulary, "--json", "--", texts[0]);
        var vector = normalized.JsonLines[0].GetProperty("embedding").EnumerateArray().Select(v => (double)v.GetSingle()).ToArray();
        Assert.Equal(1.0, Math.Sqrt(vector.Sum(v => v * v)), 5);
    }

    [Fact]
    public void EmbedImageNamesRowsOfABatchAndKeepsGoingPastBadInputs()
    {
        using var expected = TestData.ReadJson(Path.Combine(Vit, "expected.json"));
        string batch = Path.Combine(Vit, "random_input.npy");
        string wrongShape = Path.Combine(_folder, "wrong.npy");
        NpyFile.Write(wrongShape, new float[3 * 8 * 8], [3, 8, 8]);
        string garbage = Path.Combine(_folder, "garbage.npy");
        File.WriteAllText(garbage, "not a tensor");

        var result = CliRunner.Run("embed-image", "--model", Vit, "--raw", "--json", wrongShape, batch, garbage);
        Assert.Equal(1, result.ExitCode);
        var lines = result.JsonLines;
        Assert.Equal([$"{batch}#0", $"{batch}#1", $"{batch}#2"], lines.Select(l => l.GetProperty("input").GetString()));
        var got = lines.Select(l => l.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        Assert.True(TestData.RelativeError(got, TestData.Rows(expected.RootElement.GetProperty("tensors").GetProperty("random_input.npy"))) < 1e-4);
        var errors = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, errors.Length);
        Assert.Contains(errors, e => e.StartsWith("error: ") && e.Contains(wrongShape) && e.Contains("(3, 64, 64)"));
        Assert.Contains(errors, e => e.StartsWith("error: ") && e.Contains(garbage));
    }

    [Fact]
    public void EmbedImageRefusesNonFiniteAndEmptyTensorsPerInputAndGoesOn()
    {
        string ok = Path.Combine(_folder, "ok.npy"), nan = Path.Combine(_folder, "nan.npy"), empty = Path.Combine(_folder, "empty.npy");
        NpyFile.Write(ok, new float[3 * 64 * 64], [3, 64, 64]);
        var withNaN = new float[3 * 64 * 64];
        withNaN[5] = float.NaN;
        NpyFile.Write(nan, withNaN, [3, 64, 64]);
        NpyFile.Write(empty, [], [0, 3, 64, 64]);
        string png = Path.Combine(Imaging.ImagingTestData.Fixtures, "rgb_40x33.png");

        var result = CliRunner.Run("embed-image", "--model", Vit, "--json", ok, nan, png, empty);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal([ok, png], result.JsonLines.Select(l => l.GetProperty("input").GetString()));
        var errors = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, errors.Length);
        Assert.Contains(errors, e => e.StartsWith("error: ", StringComparison.Ordinal) && e.Contains(nan, StringComparison.Ordinal) && e.Contains("NaN", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("error: ", StringComparison.Ordinal) && e.Contains(empty, StringComparison.Ordinal) && e.Contains("holds no images", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(new[] { "frobnicate" }, "unknown command")]
    [InlineData(new[] { "embed-text", "--", "a cat" }, "--model is required")]
    [InlineData(new[] { "embed-text", "--model" }, "--model needs a value")]
    [InlineData(new[] { "tokenize", "--bogus", "x" }, "unknown option '--bogus'")]
    [InlineData(new[] { "tokenize", "--vocab", "v.gz", "-x" }, "after --")]
    [InlineData(new[] { "tokenize", "--", "a cat" }, "--vocab PATH or --model PATH")]
    [InlineData(new[] { "embed-text", "--model", "m", "--threads", "0", "--", "x" }, "--threads must be")]
    public void UsageErrorsExitWithTwo(string[] args, string mentions) =>
        CliRunner.AssertCleanError(CliRunner.Run(args), 2, mentions);

    [Fact]
    public void BadModelPathIsNamed()
    {
        string missing = Path.Combine(_folder, "nothing-here.safetensors");
        CliRunner.AssertCleanError(CliRunner.Run("embed-text", "--model", missing, "--vocab", TestData.BpeVocabulary, "--", "a cat"), 1, missing);
        string garbage = Path.Combine(_folder, "garbage.safetensors");
        File.WriteAllBytes(garbage, new byte[100]);
        CliRunner.AssertCleanError(CliRunner.Run("info", "--model", garbage), 1, garbage);
    }

    [Fact]
    public void HelpDescribesEveryCommand()
    {
        var general = CliRunner.Run("--help");
        Assert.Equal(0, general.ExitCode);
        foreach (var command in new[] { "info", "tokenize", "embed-text", "embed-image", "preprocess" })
        {
            Assert.Contains(command, general.Stdout);
            var help = CliRunner.Run(command, "--help");
            Assert.Equal(0, help.ExitCode);
            Assert.Contains("usage: managedclip " + command, help.Stdout);
            Assert.Contains("examples:", help.Stdout);
        }
    }

    [Theory]
    [InlineData("vit-tiny-a")]
    [InlineData("vit-tiny-a-hf")]
    public void EmbedImageFilesEndToEndMatchesTheReference(string name)
    {
        // Decoding + Pillow-exact preprocessing (PNG and JPEG) + the model, against the original pipeline's features.
        string model = TestData.ReferenceModel(name);
        using var expected = TestData.ReadJson(Path.Combine(model, "expected.json"));
        var images = expected.RootElement.GetProperty("images").EnumerateObject().ToArray();
        string broken = Path.Combine(_folder, "broken.png");
        File.WriteAllBytes(broken, [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        var paths = images.Select(i => Path.Combine(TestData.Reference, "images", i.Name)).ToList();
        paths.Insert(2, broken);

        var result = CliRunner.Run(["embed-image", "--model", model, "--raw", "--json", .. paths]);
        Assert.Equal(1, result.ExitCode);
        var lines = result.JsonLines;
        Assert.Equal(paths.Where(p => p != broken), lines.Select(l => l.GetProperty("input").GetString()));
        var got = lines.Select(l => l.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        var reference = images.Select(i => i.Value.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        double error = TestData.RelativeError(got, reference);
        Assert.True(error < 1e-4, $"{name}: end-to-end image features relative error {error:E2}");
        var stderr = Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(broken, stderr);
    }

    [Fact]
    public void FastDecodeGivesPillowsDraftPixels()
    {
        // 1001x751 at R = 64: Pillow's draft picks 1/8 (min(15, 11) >= 8), a 126x94 decode before the resize.
        string image = Path.Combine(TestData.RepositoryRoot, "tests", "fixtures", "imaging", "jpeg-corpus", "large_rgb420_q30_1001x751.jpg");
        string exactPath = Path.Combine(_folder, "exact.npy"), fastPath = Path.Combine(_folder, "fast.npy");
        Assert.Equal(0, CliRunner.Run("preprocess", "--size", "64", image, "--out", exactPath).ExitCode);
        Assert.Equal(0, CliRunner.Run("preprocess", "--size", "64", "--fast-decode", image, "--out", fastPath).ExitCode);
        var options = PreprocessOptions.OpenAI(64);
        Assert.Equal(new ImagePreprocessor(options).Preprocess(image), NpyFile.Read(exactPath).Data);
        var fast = NpyFile.Read(fastPath).Data;
        Assert.Equal(new ImagePreprocessor(options with { ReducedSizeDecoding = true }).Preprocess(image), fast);
        Assert.NotEqual(NpyFile.Read(exactPath).Data, fast);
    }

    [Fact]
    public void PreprocessWritesTheReferenceTensor()
    {
        string image = Path.Combine(TestData.Reference, "images", "chelsea.png");
        string target = Path.Combine(_folder, "chelsea.npy");
        var result = CliRunner.Run("preprocess", "--size", "64", "--json", image, "--out", target);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("[3,64,64]", result.JsonLines[0].GetProperty("shape").GetRawText());
        var (got, shape) = NpyFile.Read(target);
        var (want, _) = NpyFile.Read(Path.Combine(TestData.Reference, "images", "chelsea.64.npy"));
        Assert.Equal([3, 64, 64], shape);
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(want[i] - got[i]) < 1e-5f, $"value {i}: {got[i]} vs {want[i]}");

        CliRunner.AssertCleanError(CliRunner.Run("preprocess", "--size", "64", Path.Combine(_folder, "absent.png"), "--out", target), 1, "absent.png");
        CliRunner.AssertCleanError(CliRunner.Run("preprocess", image, "--out", target), 2, "--size R or --model PATH");
    }
}
