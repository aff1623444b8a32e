using ManagedClip.Imaging;
using ManagedClip.Tests.Support;
using ManagedClip.ZeroShot;

namespace ManagedClip.Tests.Cli;

/// <summary>
/// A result that is not finite (the model's output overflowed) is a per-input error naming the input: one "error:" line,
/// the batch goes on, exit 1 — with --json or without, in embed-image, embed-text and classify. It used to end a --json
/// batch with a serializer message naming no input, and to print NaN with exit 0 otherwise.
/// </summary>
public sealed class NonFiniteOutputTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-nonfinite-").FullName;
    static string Vit => TestData.ReferenceModel("vit-tiny-a");
    static string Image => Path.Combine(TestData.Reference, "images", "chelsea.png");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Finite pixels so large (3e38) that the image tower overflows; the other row of the batch is ordinary.</summary>
    string OverflowingTensor()
    {
        string path = Path.Combine(_folder, "huge.npy");
        var pixels = new float[2 * 3 * 64 * 64];
        Array.Fill(pixels, 3e38f, 0, 3 * 64 * 64);
        NpyFile.Write(path, pixels, [2, 3, 64, 64]);
        return path;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void EmbedImageReportsTheOverflowingInputAndGoesOn(bool json)
    {
        string ok = Path.Combine(Vit, "random_input.npy"), huge = OverflowingTensor();
        var result = CliRunner.Run(["embed-image", "--model", Vit, .. json ? new[] { "--json" } : [], ok, huge, Image]);
        Assert.Equal(1, result.ExitCode);
        var error = Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"error: {huge}#0: ", error);
        Assert.Contains("not finite", error);
        Assert.DoesNotContain("NaN", result.Stdout);
        Assert.DoesNotContain("∞", result.Stdout);
        string[] printed = [$"{ok}#0", $"{ok}#1", $"{ok}#2", $"{huge}#1", Image];
        if (json) Assert.Equal(printed, result.JsonLines.Select(l => l.GetProperty("input").GetString()));
        else Assert.Equal(printed, result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')[0]));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void EmbedTextReportsTheOverflowingTextAndGoesOn(bool json)
    {
        // The token embedding of "cat" (id 2368) at 3e38: any text holding it overflows, the others do not.
        string model = CheckpointRewriter.Rewrite(Vit, Path.Combine(_folder, "huge-cat"), (file, entry) =>
        {
            if (entry.Name != "token_embedding.weight") return CheckpointRewriter.Keep(file, entry);
            var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.GetBytes(entry)).ToArray();
            Array.Fill(values, 3e38f, 2368 * entry.Shape[1], entry.Shape[1]);
            return CheckpointRewriter.Floats(entry.Name, entry.Shape, values);
        });
        var result = CliRunner.Run(["embed-text", "--model", model, "--vocab", TestData.BpeVocabulary, .. json ? new[] { "--json" } : [], "--", "a dog", "a cat", "a bird"]);
        Assert.Equal(1, result.ExitCode);
        var error = Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: a cat: ", error);
        Assert.Contains("not finite", error);
        Assert.DoesNotContain("NaN", result.Stdout);
        if (json) Assert.Equal(["a dog", "a bird"], result.JsonLines.Select(l => l.GetProperty("input").GetString()));
        else Assert.Equal(["a dog", "a bird"], result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')[0]));
    }

    [Fact]
    public void ClassifyRefusesALogitScaleWhoseExponentOverflows()
    {
        // exp(100) overflows float32: the original's logits would be ±Inf and its probabilities NaN for every image.
        string model = CheckpointRewriter.Rewrite(Vit, Path.Combine(_folder, "hot"), (file, entry) =>
            entry.Name == "logit_scale" ? CheckpointRewriter.Floats(entry.Name, entry.Shape, [100f]) : CheckpointRewriter.Keep(file, entry));
        foreach (var json in new[] { "--json", "--no-cache" })
        {
            var result = CliRunner.Run("classify", "--model", model, "--vocab", TestData.BpeVocabulary, "--no-cache", "--labels", "cat,dog", json, Image);
            CliRunner.AssertCleanError(result, 1, "logit_scale");
            Assert.Contains(model, result.Stderr);
            Assert.Equal("", result.Stdout);
        }
    }

    [Fact]
    public void ClassifyReportsAnImageWhoseFeaturesOverflow()
    {
        // The image projection at 3e38: every image's features overflow; each is one error line, JSON or not.
        string model = CheckpointRewriter.Rewrite(Vit, Path.Combine(_folder, "huge-proj"), (file, entry) =>
        {
            if (entry.Name != "visual.proj") return CheckpointRewriter.Keep(file, entry);
            var values = new float[entry.Shape[0] * entry.Shape[1]];
            Array.Fill(values, 3e38f);
            return CheckpointRewriter.Floats(entry.Name, entry.Shape, values);
        });
        foreach (var json in new[] { "--json", "--no-cache" })
        {
            var result = CliRunner.Run("classify", "--model", model, "--vocab", TestData.BpeVocabulary, "--no-cache", "--labels", "cat,dog", json, Image, Image);
            Assert.Equal(1, result.ExitCode);
            var errors = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(2, errors.Length);
            Assert.All(errors, e => { Assert.StartsWith($"error: {Image}: ", e); Assert.Contains("not finite", e); });
            Assert.Equal("", result.Stdout);
        }
    }

    [Fact]
    public void SoftmaxIsStableForLargeLogits()
    {
        // Logits of 894 and 447: exp overflows float32 unless the maximum is subtracted first, as torch.softmax does.
        var classifier = ZeroShotClassifier.FromClassEmbeddings(["a", "b"], [1, 0, 0, 1], 2, scale: 1000);
        var probabilities = classifier.Probabilities([1, 0.5f]);
        Assert.Equal([1f, 0f], probabilities);
        Assert.Equal(1f, classifier.Classify([1, 0.5f], 1)[0].Probability);
    }
}
