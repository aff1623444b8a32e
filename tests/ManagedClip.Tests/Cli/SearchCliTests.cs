using System.Diagnostics;
using ManagedClip.Search;
using ManagedClip.Tests.Search;
using ManagedClip.Tests.ZeroShot;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Cli;

/// <summary>managedclip index and search as a user runs them: rankings, incremental runs, a killed run, bad input.</summary>
public sealed class SearchCliTests(ITestOutputHelper log) : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-search-").FullName;
    static string Vit => TestData.ReferenceModel("vit-tiny-a");
    string IndexPath => Path.Combine(_folder, "photos.mcidx");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    string ReferencePhotos()
    {
        string photos = Path.Combine(_folder, "photos");
        Directory.CreateDirectory(Path.Combine(photos, "more"));
        foreach (var file in Directory.GetFiles(Path.Combine(TestData.Reference, "images")).Where(f => !f.EndsWith(".npy", StringComparison.Ordinal)))
            File.Copy(file, Path.Combine(photos, Path.GetFileName(file)));
        File.Copy(Path.Combine(TestData.SharedRoot, "clip", "CLIP.png"), Path.Combine(photos, "more", "CLIP.png"));
        for (int i = 0; i < 4; i++) SearchTestData.WritePng(Path.Combine(photos, "more", $"noise{i}.png"), i);
        return photos;
    }

    [Fact]
    public void SearchRanksTheIndexedImagesByExactCosine()
    {
        string photos = ReferencePhotos();
        var index = CliRunner.Run("index", "--model", Vit, "--vocab", TestData.BpeVocabulary, "--out", IndexPath, "--threads", "2", "--json", photos);
        Assert.Equal(0, index.ExitCode);
        var summary = Assert.Single(index.JsonLines);
        Assert.Equal(10, summary.GetProperty("indexed").GetInt32());
        Assert.Equal(10, summary.GetProperty("embedded").GetInt32());

        using var model = ZeroShotTestData.Load("vit-tiny-a");
        var files = ImageIndexer.FindImages([photos]);
        var images = model.EncodeImageFiles(files).Select(r => r.Features!).ToArray();
        string[] queries = ["a photo of a cat", "a rocket launch"];
        // No --model: the model and vocabulary recorded in the index are used.
        var search = CliRunner.Run(["search", "--index", IndexPath, "--top", "100", "--json", "--", .. queries]);
        Assert.Equal(0, search.ExitCode);
        var lines = search.JsonLines;
        Assert.Equal(20, lines.Length);
        for (int q = 0; q < queries.Length; q++)
        {
            var text = model.EncodeText(queries[q]);
            var exact = Enumerable.Range(0, files.Count).Select(i => (Path: files[i], Score: SearchTestData.Cosine(images[i], text))).OrderByDescending(e => e.Score).ToArray();
            var hits = lines.Where(l => l.GetProperty("query").GetString() == queries[q]).ToArray();
            Assert.Equal(Enumerable.Range(1, 10), hits.Select(h => h.GetProperty("rank").GetInt32()));
            Assert.Equal(exact.Select(e => e.Path), hits.Select(h => h.GetProperty("path").GetString()));
            for (int r = 0; r < hits.Length; r++) Assert.Equal(exact[r].Score, hits[r].GetProperty("score").GetDouble(), 1e-5);
        }

        // An image query finds itself first, with cosine 1; a table without --json.
        var byImage = CliRunner.Run("search", "--index", IndexPath, "--model", Vit, "--top", "2", "--image", Path.Combine(photos, "chelsea.png"));
        Assert.Equal(0, byImage.ExitCode);
        var table = byImage.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, table.Length);
        Assert.Matches(@"^\s+rank\s+score\s+path$", table[1]);
        Assert.Matches(@"^\s+1\s+1\.0000\s+.*chelsea\.png$", table[2]);
    }

    [Fact]
    public void ReindexingEmbedsOnlyChangedFiles()
    {
        string photos = ReferencePhotos();
        string[] Index() => ["index", "--model", Vit, "--out", IndexPath, "--threads", "2", "--json", photos];
        Assert.Equal(10, CliRunner.Run(Index()).JsonLines[0].GetProperty("embedded").GetInt32());
        SearchTestData.WritePng(Path.Combine(photos, "more", "noise0.png"), 100);
        SearchTestData.WritePng(Path.Combine(photos, "new.png"), 200);
        File.Delete(Path.Combine(photos, "moon_gray.png"));
        File.WriteAllText(Path.Combine(photos, "broken.jpg"), "no JPEG here");
        var second = CliRunner.Run(Index());
        Assert.Equal(1, second.ExitCode); // the broken file is reported...
        Assert.Contains("broken.jpg", second.Stderr);
        var report = Assert.Single(second.JsonLines); // ...and the rest is indexed
        Assert.Equal((2, 8, 1, 1, 10), (report.GetProperty("embedded").GetInt32(), report.GetProperty("unchanged").GetInt32(),
            report.GetProperty("removed").GetInt32(), report.GetProperty("failed").GetInt32(), report.GetProperty("indexed").GetInt32()));
        var text = CliRunner.Run("index", "--model", Vit, "--out", IndexPath, photos);
        Assert.Contains("10 images indexed (0 embedded, 10 unchanged, 0 removed, 1 failed)", text.Stdout); // only the broken file is tried again
    }

    [Fact]
    public void AKilledIndexingRunLeavesAValidIndexAndTheNextRunFinishesIt()
    {
        const int Total = 400;
        string photos = Path.Combine(_folder, "many");
        Directory.CreateDirectory(photos);
        Parallel.For(0, Total, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i => SearchTestData.WritePng(Path.Combine(photos, $"{i:D4}.png"), i, size: 128));
        string[] command = ["index", "--model", Vit, "--out", IndexPath, "--commit-every", "20", "--threads", "2", "--json", photos];

        // Killed right after its first commit, then again after one more: each time a complete, valid index is left.
        int previous = 0;
        for (int round = 0; round < 2; round++)
        {
            var stamp = File.Exists(IndexPath) ? (File.GetLastWriteTimeUtc(IndexPath), new FileInfo(IndexPath).Length) : default;
            using var process = CliRunner.Start(command);
            var clock = Stopwatch.StartNew();
            while (!process.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2))
            {
                if (File.Exists(IndexPath) && (File.GetLastWriteTimeUtc(IndexPath), new FileInfo(IndexPath).Length) != stamp && EmbeddingIndex.Load(IndexPath).Count > previous) break;
                Thread.Sleep(2);
            }
            Assert.False(process.HasExited, "indexing finished before it could be killed; the test needs more images");
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.True(File.Exists(IndexPath + ".lock")); // left by the killed run; the OS has released its lock, so the next run takes it over

            var index = EmbeddingIndex.Load(IndexPath); // intact: loads and its checksum holds
            log.WriteLine($"round {round + 1}: killed with {index.Count} of {Total} images committed");
            Assert.InRange(index.Count, previous + 1, Total - 1);
            Assert.Equal(index.Count, index.Entries.Select(e => e.Path).Distinct().Count());
            previous = index.Count;
        }

        var finish = CliRunner.Run(command);
        Assert.Equal(0, finish.ExitCode);
        var report = Assert.Single(finish.JsonLines);
        Assert.Equal(previous, report.GetProperty("unchanged").GetInt32()); // what was committed is kept, not embedded again
        Assert.Equal(Total - previous, report.GetProperty("embedded").GetInt32());
        var final = EmbeddingIndex.Load(IndexPath);
        Assert.Equal(Total, final.Count);
        Assert.Equal(Directory.GetFiles(photos).Order(StringComparer.Ordinal), final.Entries.Select(e => e.Path).Order(StringComparer.Ordinal));
        Assert.Equal([Path.GetFileName(IndexPath)], Directory.GetFiles(_folder).Select(Path.GetFileName)); // no temporary file left behind
    }

    [Fact]
    public void BadIndexesAndQueriesAreClearErrors()
    {
        string photos = ReferencePhotos();
        Assert.Equal(0, CliRunner.Run("index", "--model", Vit, "--out", IndexPath, photos).ExitCode);

        var missing = CliRunner.Run("search", "--index", Path.Combine(_folder, "missing.mcidx"), "--", "cat");
        CliRunner.AssertCleanError(missing, 1, "no such index file");
        Assert.Contains("build one with: managedclip index --model PATH --out", missing.Stderr); // the CLI's terms; the library names ImageIndexer
        string notIndex = Path.Combine(photos, "chelsea.png");
        CliRunner.AssertCleanError(CliRunner.Run("search", "--index", notIndex, "--", "cat"), 1, "not a ManagedClip index");
        string corrupt = Path.Combine(_folder, "corrupt.mcidx");
        var bytes = File.ReadAllBytes(IndexPath);
        File.WriteAllBytes(corrupt, bytes[..(bytes.Length - 100)]);
        CliRunner.AssertCleanError(CliRunner.Run("search", "--index", corrupt, "--", "cat"), 1, "damaged");
        CliRunner.AssertCleanError(CliRunner.Run("index", "--model", Vit, "--out", corrupt, photos), 1, "damaged");

        var otherModel = CliRunner.Run("search", "--index", IndexPath, "--model", TestData.ReferenceModel("vit-tiny-a-hf"), "--", "cat");
        CliRunner.AssertCleanError(otherModel, 1, "built with another model");
        CliRunner.AssertCleanError(CliRunner.Run("index", "--model", TestData.ReferenceModel("rn-tiny-a"), "--out", IndexPath, photos), 1, "built with another model");

        // Vocabulary: the index was built without one and vit-tiny-a has none beside it.
        CliRunner.AssertCleanError(CliRunner.Run("search", "--index", IndexPath, "--", "cat"), 1, "vocab");
        string[] Search(params string[] rest) => ["search", "--index", IndexPath, "--vocab", TestData.BpeVocabulary, .. rest];
        CliRunner.AssertCleanError(CliRunner.Run(Search(["--", string.Join(' ', Enumerable.Repeat("big", 80))])), 1, "the model's context holds 77");
        CliRunner.AssertCleanError(CliRunner.Run(Search("--", " ")), 1, "the query is empty");
        CliRunner.AssertCleanError(CliRunner.Run(Search()), 2, "no query");
        CliRunner.AssertCleanError(CliRunner.Run(Search("--image", notIndex, "--", "cat")), 2, "not both");
        CliRunner.AssertCleanError(CliRunner.Run(Search("--image", Path.Combine(_folder, "nope.png"))), 1, "nope.png");
        CliRunner.AssertCleanError(CliRunner.Run("search", "--", "cat"), 2, "--index");
        CliRunner.AssertCleanError(CliRunner.Run("index", "--model", Vit, photos), 2, "--out");
        CliRunner.AssertCleanError(CliRunner.Run("index", "--model", Vit, "--out", IndexPath, Path.Combine(_folder, "nowhere")), 1, "no such folder");
        Assert.Equal(0, CliRunner.Run(Search("--", "a cat")).ExitCode);
    }

    [Fact]
    public void IndexRefusesAnIndexThatAnotherProcessIsWriting()
    {
        string photos = ReferencePhotos();
        string[] index = ["index", "--model", Vit, "--out", IndexPath, "--json", photos];
        using (IndexWriteLock.Acquire(IndexPath)) // what a running `index` holds, held by this process
        {
            var refused = CliRunner.Run(index);
            CliRunner.AssertCleanError(refused, 1, "another run is writing this index");
            Assert.Contains(IndexPath, refused.Stderr);
            Assert.Equal("", refused.Stdout);
            Assert.False(File.Exists(IndexPath));
        }
        Assert.Equal(0, CliRunner.Run(index).ExitCode);
        Assert.Equal([Path.GetFileName(IndexPath)], Directory.GetFiles(_folder).Select(Path.GetFileName));
    }

    [Fact]
    public void IndexCountsFilesItCannotOpenAndChecksTheOutputBeforeEmbedding()
    {
        string photos = ReferencePhotos();
        // A name that is not UTF-8 (written by the shell: .NET cannot name it).
        SearchTestData.Shell(photos, """cp chelsea.png "$(printf 'cat\377.png')" """);
        try
        {
            var result = CliRunner.Run("index", "--model", Vit, "--out", IndexPath, photos);
            Assert.Equal(1, result.ExitCode);
            Assert.Contains("10 images indexed (10 embedded, 0 unchanged, 0 removed, 1 failed)", result.Stdout);
            Assert.Contains("cat\uFFFD.png: cannot read: its name is not valid UTF-8", result.Stderr);
        }
        finally { SearchTestData.Shell(photos, """rm "$(printf 'cat\377.png')" """); } // nor delete it

        // An --out that cannot be written is an error before any image is embedded (a file where its folder should be).
        string aFile = Path.Combine(_folder, "a-file");
        File.WriteAllText(aFile, "");
        string unwritable = Path.Combine(aFile, "photos.mcidx");
        var refused = CliRunner.Run("index", "--model", Vit, "--out", unwritable, photos);
        CliRunner.AssertCleanError(refused, 1, unwritable);
        Assert.Contains("cannot write the index there", refused.Stderr);
    }

    [Fact]
    public void HelpDescribesTheNewCommands()
    {
        var general = CliRunner.Run("--help");
        foreach (var command in new[] { "classify", "index", "search" })
        {
            Assert.Contains(command, general.Stdout);
            var help = CliRunner.Run(command, "--help");
            Assert.Equal(0, help.ExitCode);
            Assert.Contains("usage: managedclip " + command, help.Stdout);
            Assert.Contains("examples:", help.Stdout);
            Assert.Contains("--threads", help.Stdout);
            Assert.Contains("--json", help.Stdout);
        }
    }
}
