using System.Globalization;
using System.Numerics.Tensors;
using ManagedClip.Tests;
using ManagedClip.Tests.Cli;

namespace ManagedClip.Aot.Tests;

/// <summary>The sample app, built against the packed NuGet package and published AOT and trimmed, runs from its folder.</summary>
public class SampleTests
{
    [Fact]
    public void PublishedSamplePrintsTheLibraryProbabilities()
    {
        string sample = Path.Combine(TestData.RepositoryRoot, "samples", "ZeroShot", "bin", "Release", "net10.0", "linux-x64", "publish", "ZeroShot");
        Assert.True(File.Exists(sample), $"{sample} is missing: pack, then dotnet publish samples/ZeroShot -c Release (.ci/run does)");
        string model = TestData.ReferenceModel("vit-tiny-a-hf");
        string image = Path.Combine(TestData.Reference, "images", "chelsea.png");
        string[] labels = ["cat", "dog", "rocket"];

        var run = CliRunner.RunProgram(sample, [model, image, .. labels]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        var printed = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split('\t')).ToDictionary(parts => parts[1], parts => float.Parse(parts[0], CultureInfo.InvariantCulture));

        // The same computation in-process with the JIT library.
        using var clip = ClipModel.Load(model);
        var classes = clip.EncodeTexts(labels.Select(l => $"a photo of a {l}.").ToArray()).Select(t => ClipModel.Normalize(t)).ToArray();
        var picture = ClipModel.Normalize(clip.EncodeImageFiles([image]).Single().Features!);
        var logits = classes.Select(c => MathF.Exp(clip.LogitScale) * TensorPrimitives.Dot(picture, c)).ToArray();
        var expected = new float[labels.Length];
        TensorPrimitives.SoftMax(logits, expected);
        for (int i = 0; i < labels.Length; i++)
            Assert.True(Math.Abs(expected[i] - printed[labels[i]]) < 2e-6, $"{labels[i]}: sample {printed[labels[i]]}, library {expected[i]}");
    }
}
