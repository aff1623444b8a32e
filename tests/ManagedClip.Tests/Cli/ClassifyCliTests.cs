using ManagedClip.Tests.ZeroShot;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Cli;

/// <summary>managedclip classify as a user runs it: probabilities against the reference, the cache across runs, tables, bad input.</summary>
public sealed class ClassifyCliTests(ITestOutputHelper log) : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-classify-").FullName;
    static string Vit => TestData.ReferenceModel("vit-tiny-a");
    string Cache => Path.Combine(_folder, "cache");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    string[] Classify(params string[] rest) => ["classify", "--model", Vit, "--vocab", TestData.BpeVocabulary, "--threads", "2", "--cache-dir", Cache, .. rest];

    [Fact]
    public void AnUnwritableCacheNamesTheFlags()
    {
        string notAFolder = Path.Combine(_folder, "a-file");
        File.WriteAllText(notAFolder, "not a folder");
        var result = CliRunner.Run("classify", "--model", Vit, "--vocab", TestData.BpeVocabulary, "--threads", "2", "--cache-dir", notAFolder,
            "--labels", "cat,dog", ZeroShotTestData.ImagePath("chelsea.png"));
        CliRunner.AssertCleanError(result, 1, "cannot write the class-embedding cache");
        Assert.Contains("on the command line: --cache-dir DIR, or --no-cache", result.Stderr);
    }

    [Fact]
    public void ProbabilitiesEqualTheSoftmaxOfTheReferenceFeatures()
    {
        var reference = ZeroShotTestData.Reference("vit-tiny-a");
        string labels = Path.Combine(_folder, "labels.txt");
        File.WriteAllLines(labels, reference.Labels);
        var pngs = reference.Images.Where(i => i.Name.EndsWith(".png", StringComparison.Ordinal)).ToArray();
        var result = CliRunner.Run(Classify(["--labels-file", labels, "--template", "{}", "--top", "100", "--json", .. pngs.Select(i => ZeroShotTestData.ImagePath(i.Name))]));
        Assert.Equal(0, result.ExitCode);
        var lines = result.JsonLines;
        Assert.Equal(pngs.Length, lines.Length);
        double worst = 0;
        for (int i = 0; i < pngs.Length; i++)
        {
            Assert.Equal(ZeroShotTestData.ImagePath(pngs[i].Name), lines[i].GetProperty("input").GetString());
            var expected = ZeroShotTestData.ExpectedProbabilities(pngs[i].Features, reference.TextFeatures, reference.LogitScale);
            var predictions = lines[i].GetProperty("predictions").EnumerateArray().ToArray();
            Assert.Equal(reference.Labels.Length, predictions.Length); // --top above the label count shows them all
            var probabilities = predictions.Select(p => p.GetProperty("probability").GetDouble()).ToArray();
            Assert.Equal(probabilities.OrderByDescending(p => p), probabilities);
            foreach (var p in predictions)
            {
                int k = Array.IndexOf(reference.Labels, p.GetProperty("label").GetString());
                worst = Math.Max(worst, Math.Abs(expected[k] - p.GetProperty("probability").GetDouble()));
            }
        }
        log.WriteLine($"CLI vs reference softmax: worst |p − p_ref| = {worst:E2}");
        Assert.True(worst < 1e-3);
    }

    [Fact]
    public void ClassEmbeddingsAreBuiltOnceAndReadFromTheCacheAfter()
    {
        // 3 labels × the 80 ImageNet templates read from the shared JSON file.
        string prompts = Path.Combine(TestData.SharedRoot, "clip", "imagenet_prompts.json");
        string image = ZeroShotTestData.ImagePath("chelsea.png");
        var first = CliRunner.Run(Classify("--labels", "tabby cat, golden retriever, rocket", "--templates-file", prompts, "--verbose", "--json", image));
        Assert.Equal(0, first.ExitCode);
        Assert.Contains("3 labels × 80 templates, 240 prompts encoded", first.Stderr);
        Assert.Single(Directory.GetFiles(Path.Combine(Cache, "classes")));

        var second = CliRunner.Run(Classify("--labels", "tabby cat, golden retriever, rocket", "--templates-file", prompts, "--verbose", "--json", image));
        Assert.Equal(0, second.ExitCode);
        Assert.Contains("read from cache", second.Stderr);
        Assert.Equal(first.Stdout, second.Stdout);

        var changed = CliRunner.Run(Classify("--labels", "tabby cat, golden retriever, space rocket", "--templates-file", prompts, "--verbose", "--json", image));
        Assert.Contains("prompts encoded", changed.Stderr);
        Assert.Equal(2, Directory.GetFiles(Path.Combine(Cache, "classes")).Length);

        var uncached = CliRunner.Run("classify", "--model", Vit, "--vocab", TestData.BpeVocabulary, "--labels", "a,b", "--no-cache", "--verbose", image);
        Assert.Equal(0, uncached.ExitCode);
        Assert.Contains("(not cached)", uncached.Stderr);
    }

    [Fact]
    public void ADamagedCacheEntryIsRecomputedWithAWarningUnderVerbose()
    {
        string image = ZeroShotTestData.ImagePath("chelsea.png");
        var first = CliRunner.Run(Classify("--labels", "cat,dog,diagram", "--json", image));
        Assert.Equal(0, first.ExitCode);
        string entry = Assert.Single(Directory.GetFiles(Path.Combine(Cache, "classes")));
        var bytes = File.ReadAllBytes(entry);
        bytes[56 + 64 * 4 + 3] ^= 0x80; // the sign of row 1's first value
        File.WriteAllBytes(entry, bytes);

        var damaged = CliRunner.Run(Classify("--labels", "cat,dog,diagram", "--json", "--verbose", image));
        Assert.Equal(0, damaged.ExitCode);
        Assert.Equal(first.Stdout, damaged.Stdout);
        Assert.Contains($"warning: class-embedding cache entry not used: {entry}: its checksum does not match", damaged.Stderr);
        Assert.Contains("prompts encoded", damaged.Stderr);
        var healed = CliRunner.Run(Classify("--labels", "cat,dog,diagram", "--json", "--verbose", image));
        Assert.Contains("read from cache", healed.Stderr);
        Assert.DoesNotContain("warning", healed.Stderr);
        Assert.Equal(first.Stdout, healed.Stdout);
    }

    [Fact]
    public void LabelAndTemplateFilesWithAByteOrderMarkAndEmptyFiles()
    {
        string image = ZeroShotTestData.ImagePath("chelsea.png");
        byte[] bom = [0xEF, 0xBB, 0xBF];
        string labels = Path.Combine(_folder, "labels.txt"), labelsJson = Path.Combine(_folder, "labels.json"), templates = Path.Combine(_folder, "templates.txt");
        File.WriteAllBytes(labels, [.. bom, .. "cat\ndog\n"u8]);
        File.WriteAllBytes(labelsJson, [.. bom, .. "[\"cat\", \"dog\"]"u8]);
        File.WriteAllBytes(templates, [.. bom, .. "a photo of a {}.\n"u8]);
        var plain = CliRunner.Run(Classify("--labels", "cat,dog", "--template", "a photo of a {}.", "--json", image));
        Assert.Equal(0, plain.ExitCode);
        foreach (var file in new[] { labels, labelsJson })
        {
            var result = CliRunner.Run(Classify("--labels-file", file, "--templates-file", templates, "--json", image));
            Assert.Equal(0, result.ExitCode);
            Assert.Equal(["cat", "dog"], result.JsonLines[0].GetProperty("predictions").EnumerateArray().Select(p => p.GetProperty("label").GetString()!).Order());
            Assert.Equal(plain.Stdout, result.Stdout); // same prompts, same numbers
        }

        // An empty file is unusable content, not a usage error: exit 1 for labels and templates alike.
        string empty = Path.Combine(_folder, "empty.txt");
        File.WriteAllText(empty, "# nothing here\n\n");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels-file", empty, image)), 1, "label list is empty");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels", "cat,dog", "--templates-file", empty, image)), 1, "no templates");
    }

    [Fact]
    public void WithoutJsonResultsAreATable()
    {
        var result = CliRunner.Run(Classify("--labels", "cat,dog,diagram", "--template", "a photo of a {}.", "--template", "a drawing of a {}.", "--top", "2",
            ZeroShotTestData.ImagePath("chelsea.png")));
        Assert.Equal(0, result.ExitCode);
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length); // the image, the header, two rows
        Assert.Equal(ZeroShotTestData.ImagePath("chelsea.png"), lines[0]);
        Assert.Matches(@"^\s+rank\s+probability\s+label$", lines[1]);
        Assert.Matches(@"^\s+1\s+\d+\.\d\d%\s+(cat|dog|diagram)$", lines[2]);
        Assert.Equal("", result.Stderr); // no progress bar when stderr is not a terminal
    }

    [Fact]
    public void BadLabelsAndTemplatesAreClearErrors()
    {
        string image = ZeroShotTestData.ImagePath("chelsea.png");
        // Malformed labels or templates on the command line are usage errors (exit 2); the same in a file is content (exit 1, below).
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels", "", image)), 2, "label list is empty");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels", "cat,,dog", image)), 2, "label 2 of 3 is empty");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels", "cat,dog", "--template", "a photo of a cat", image)), 2, "template 'a photo of a cat' has no {}");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels", "cat," + string.Join(' ', Enumerable.Repeat("big", 90)), image)), 1, "context holds 77");
        CliRunner.AssertCleanError(CliRunner.Run(Classify(image)), 2, "--labels");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels", "a", "--labels-file", "x.txt", image)), 2, "not both");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels-file", Path.Combine(_folder, "missing.txt"), image)), 2, "missing.txt");
        string empty = Path.Combine(_folder, "empty.txt");
        File.WriteAllText(empty, "# nothing here\n\n");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels-file", empty, image)), 1, "label list is empty");
        string badJson = Path.Combine(_folder, "labels.json");
        File.WriteAllText(badJson, "{\"names\": [1, 2]}");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels-file", badJson, image)), 1, "\"labels\" or \"classes\"");
        CliRunner.AssertCleanError(CliRunner.Run(Classify("--labels", "cat", "--top", "0", image)), 2, "--top");

        // A bad image is reported and the good ones still classified; exit code 1.
        var mixed = CliRunner.Run(Classify("--labels", "cat,dog", "--json", Path.Combine(_folder, "nope.png"), image));
        Assert.Equal(1, mixed.ExitCode);
        Assert.Single(mixed.JsonLines);
        Assert.Contains("nope.png", mixed.Stderr);
    }
}
