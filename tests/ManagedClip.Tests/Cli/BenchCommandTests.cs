namespace ManagedClip.Tests.Cli;

/// <summary>managedclip bench: the output contract only (timings are never asserted).</summary>
public sealed class BenchCommandTests
{
    static string Vit => TestData.ReferenceModel("vit-tiny-a");

    [Theory]
    [InlineData("image", new string[0])]
    [InlineData("text", new string[0])]
    [InlineData("text", new[] { "--full-context" })]
    public void LastJsonLineSummarizesTheRun(string tower, string[] extra)
    {
        var result = CliRunner.Run(["bench", "--model", Vit, "--tower", tower, "--batch", "3", "--iterations", "2", "--warmup", "1", "--threads", "1", "--json", .. extra]);
        Assert.Equal(0, result.ExitCode);
        var lines = result.JsonLines;
        Assert.Equal(3, lines.Length);                       // one per timed call, then the summary
        var summary = lines[^1];
        Assert.Equal(["tower", "batch", "threads", "items_per_second", "ms_per_item", "gflops"], summary.EnumerateObject().Select(p => p.Name));
        Assert.Equal(tower, summary.GetProperty("tower").GetString());
        Assert.Equal(3, summary.GetProperty("batch").GetInt32());
        Assert.Equal(1, summary.GetProperty("threads").GetInt32());
        Assert.True(summary.GetProperty("items_per_second").GetDouble() > 0);
        Assert.True(summary.GetProperty("gflops").GetDouble() > 0);
    }

    [Fact]
    public void TextOutputAndUsageErrors()
    {
        var text = CliRunner.Run("bench", "--model", Vit, "--tower", "image", "--iterations", "1", "--warmup", "0");
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("items/s", text.Stdout);
        Assert.Contains("GFLOP/s", text.Stdout);
        Assert.Equal(2, CliRunner.Run("bench", "--model", Vit, "--tower", "audio").ExitCode);
        Assert.Equal(2, CliRunner.Run("bench", "--model", Vit, "--tower", "image", "--full-context").ExitCode);
        Assert.Equal(2, CliRunner.Run("bench", "--model", Vit).ExitCode);
    }

    [Fact]
    public void FlopsMatchTheSpec()
    {
        // shared/docs/clip-spec.md §11: ViT-B/32 image 8,817,623,040; text at 77 tokens 5,959,540,736 (T = 512, E = 512); RN50 first-query 11.586 G.
        var vit = SyntheticCaseConfig("vit-b32-openai-f32");
        Assert.Equal(8_817_623_040L, ClipFlops.Image(vit));
        Assert.Equal(5_959_540_736L, ClipFlops.Text(vit, 77));
        var rn50 = SyntheticCaseConfig("rn50-openai-f32");
        Assert.Equal(11.586, ClipFlops.Image(rn50) / 1e9, 3);
        Assert.Equal(5_960_065_024L, ClipFlops.Text(rn50, 77));
    }

    static global::ManagedClip.Checkpoints.ClipConfig SyntheticCaseConfig(string name)
    {
        var s = Support.SyntheticCases.Load(name);
        var act = global::ManagedClip.Kernels.Activation.QuickGelu;
        var vision = s.Arch == "vit"
            ? (global::ManagedClip.Checkpoints.VisionConfig)new global::ManagedClip.Checkpoints.VisionTransformerConfig(s.VisionWidth, s.VisionLayers, s.VisionHeads, s.VisionMlpWidth, s.VisionPatchSize, s.ImageResolution, act, 1e-5f)
            : new global::ManagedClip.Checkpoints.ModifiedResNetConfig(s.VisionWidth, s.VisionStageBlocks, s.VisionHeads, s.ImageResolution);
        var text = new global::ManagedClip.Checkpoints.TextConfig(s.TransformerWidth, s.TransformerLayers, s.TransformerHeads, s.TextMlpWidth, s.ContextLength, s.VocabSize, act, 1e-5f, global::ManagedClip.Checkpoints.TextPooling.ArgMax, 49407);
        return new global::ManagedClip.Checkpoints.ClipConfig(s.EmbedDim, vision, text);
    }
}
