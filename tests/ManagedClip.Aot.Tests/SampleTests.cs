using System.Globalization;
using ManagedClip.Tests;
using ManagedClip.Tests.Cli;

namespace ManagedClip.Aot.Tests;

/// <summary>
/// The sample app, built against the packed NuGet package and published AOT and trimmed, runs from its folder and
/// prints the probabilities the portable AOT `managedclip classify` (the same instruction set, x86-64-v3) prints for the same image and labels (default templates).
/// </summary>
public class SampleTests
{
    public static TheoryData<string, string, string[]> Cases()
    {
        string demo = Path.Combine(TestData.RepositoryRoot, "weights", "demo");
        return new()
        {
            { TestData.ReferenceModel("vit-tiny-a-hf"), Path.Combine(TestData.Reference, "images", "chelsea.png"), ["cat", "dog", "rocket"] },
            { demo, Path.Combine(demo, "samples", "red_circle.png"), File.ReadAllLines(Path.Combine(demo, "labels.txt")).Where(l => l.Length > 0).ToArray() },
        };
    }

    [Theory, MemberData(nameof(Cases))]
    public void PublishedSamplePrintsTheCliProbabilities(string model, string image, string[] labels)
    {
        string sample = Path.Combine(TestData.RepositoryRoot, "samples", "ZeroShot", "bin", "Release", "net10.0", "linux-x64", "publish", "ZeroShot");
        Assert.True(File.Exists(sample), $"{sample} is missing: pack, then dotnet publish samples/ZeroShot -c Release (.ci/run does)");

        var run = CliRunner.RunProgram(sample, [model, image, .. labels]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        var printed = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split('\t')).ToDictionary(parts => parts[1], parts => double.Parse(parts[0], CultureInfo.InvariantCulture));
        Assert.Equal(labels.Order(), printed.Keys.Order());

        var cli = CliRunner.RunProgram(AotBuildTests.Binary("aot-portable"),
            ["classify", "--model", model, "--labels", string.Join(',', labels), "--top", labels.Length.ToString(CultureInfo.InvariantCulture), "--no-cache", "--json", image]);
        Assert.True(cli.ExitCode == 0, cli.Stderr);
        var predictions = Assert.Single(cli.JsonLines).GetProperty("predictions").EnumerateArray().ToArray();
        Assert.Equal(labels.Length, predictions.Length);
        foreach (var p in predictions)
        {
            string label = p.GetProperty("label").GetString()!;
            double expected = p.GetProperty("probability").GetDouble();
            // The sample prints six decimals.
            Assert.True(Math.Abs(expected - printed[label]) <= 5.1e-7, $"{label}: sample {printed[label]}, managedclip classify {expected}");
        }
        // And the ranking is the CLI's.
        Assert.Equal(predictions.Select(p => p.GetProperty("label").GetString()), run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')[1]));
    }
}
