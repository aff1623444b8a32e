using ManagedClip.Search;
using ManagedClip.Tests.ZeroShot;

namespace ManagedClip.Tests.Search;

/// <summary>Indexing folders: embeddings as the model gives them, incremental updates that touch only changed files, failures skipped.</summary>
public sealed class ImageIndexerTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-indexer-").FullName;
    string Photos => Path.Combine(_folder, "photos");
    string IndexPath => Path.Combine(_folder, "photos.mcidx");

    public ImageIndexerTests()
    {
        Directory.CreateDirectory(Path.Combine(Photos, "nested", "deeper"));
        for (int i = 0; i < 6; i++) SearchTestData.WritePng(Path.Combine(Photos, i < 3 ? "" : "nested", $"p{i}.png"), i);
        File.WriteAllText(Path.Combine(Photos, "notes.txt"), "not an image, not indexed");
        File.WriteAllText(Path.Combine(Photos, "nested", "deeper", "broken.png"), "not a png at all");
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void SecondRunEmbedsOnlyNewOrChangedFilesAndDropsDeletedOnes()
    {
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        var failures = new List<string>();
        var embeddedPaths = new List<string>();
        IndexReport Run(int commitEvery = 1000)
        {
            embeddedPaths.Clear();
            failures.Clear();
            int last = 0;
            return ImageIndexer.Update(model, IndexPath, [Photos], new IndexingOptions
            {
                CommitEvery = commitEvery,
                Failed = (path, _) => failures.Add(Path.GetFileName(path)),
                Progress = (done, total) => { Assert.True(done >= last && done <= total); last = done; },
            });
        }

        var first = Run(commitEvery: 4);
        Assert.Equal(new IndexReport(Images: 7, Embedded: 6, Reused: 0, Removed: 0, Failed: 1, Commits: 2, Indexed: 6), first);
        Assert.Equal(["broken.png"], failures);
        var index = EmbeddingIndex.Load(IndexPath);
        Assert.Equal(model.Fingerprint, index.Fingerprint);
        Assert.Equal(Path.GetFullPath(model.SourcePath), index.ModelPath);

        // The stored embeddings are the model's, normalized.
        var paths = index.Entries.Select(e => e.Path).ToArray();
        var direct = model.EncodeImageFiles(paths).Select(r => ClipModel.Normalize(r.Features!)).ToArray();
        for (int i = 0; i < paths.Length; i++) Assert.Equal(direct[i], index.EmbeddingOf(i).ToArray(), (a, b) => Math.Abs(a - b) < 1e-6f);

        // Nothing changed: nothing embedded but the broken file, tried again.
        var second = Run();
        Assert.Equal((0, 6, 0, 1), (second.Embedded, second.Reused, second.Removed, second.Failed));

        // One rewritten, one touched (same bytes, new time), one added, one deleted.
        SearchTestData.WritePng(Path.Combine(Photos, "p1.png"), 101);
        File.SetLastWriteTimeUtc(Path.Combine(Photos, "nested", "p4.png"), DateTime.UtcNow.AddMinutes(1));
        SearchTestData.WritePng(Path.Combine(Photos, "nested", "deeper", "p9.png"), 9);
        File.Delete(Path.Combine(Photos, "p2.png"));
        File.Delete(Path.Combine(Photos, "nested", "deeper", "broken.png"));
        int encoded = 0;
        var third = ImageIndexer.Update(model, IndexPath, [Photos], new IndexingOptions { Progress = (done, _) => encoded = done });
        Assert.Equal(new IndexReport(Images: 6, Embedded: 3, Reused: 3, Removed: 1, Failed: 0, Commits: 2, Indexed: 6), third);
        Assert.Equal(3, encoded);
        var updated = EmbeddingIndex.Load(IndexPath);
        Assert.DoesNotContain(updated.Entries, e => e.Path.EndsWith("p2.png", StringComparison.Ordinal));
        // Unchanged files kept their stored vectors bit for bit; the rewritten one has its new embedding.
        foreach (var name in new[] { "p0.png", Path.Combine("nested", "p3.png"), Path.Combine("nested", "p5.png") })
        {
            string path = Path.Combine(Photos, name);
            int before = index.Entries.ToList().FindIndex(e => e.Path == path), after = updated.Entries.ToList().FindIndex(e => e.Path == path);
            Assert.Equal(index.EmbeddingOf(before).ToArray(), updated.EmbeddingOf(after).ToArray());
        }
        int rewritten = updated.Entries.ToList().FindIndex(e => e.Path == Path.Combine(Photos, "p1.png"));
        var fresh = ClipModel.Normalize(model.EncodeImageFiles([Path.Combine(Photos, "p1.png")]).Single().Features!);
        Assert.Equal(fresh, updated.EmbeddingOf(rewritten).ToArray(), (a, b) => Math.Abs(a - b) < 1e-6f);

        var fourth = Run();
        Assert.Equal(new IndexReport(Images: 6, Embedded: 0, Reused: 6, Removed: 0, Failed: 0, Commits: 0, Indexed: 6), fourth);
    }

    [Fact]
    public void ALinkedImageIsReEmbeddedWhenItsTargetChanges()
    {
        // A photo library of symbolic links (into another folder): the link's own size and time never change.
        string originals = Path.Combine(_folder, "originals"), library = Path.Combine(_folder, "library");
        Directory.CreateDirectory(originals);
        Directory.CreateDirectory(library);
        SearchTestData.WritePng(Path.Combine(originals, "a.png"), 1);
        File.CreateSymbolicLink(Path.Combine(library, "a.png"), Path.Combine(originals, "a.png"));
        using var model = ZeroShotTestData.Load("vit-tiny-a");

        Assert.Equal(1, ImageIndexer.Update(model, IndexPath, [library]).Embedded);
        Assert.Equal(0, ImageIndexer.Update(model, IndexPath, [library]).Embedded);
        SearchTestData.WritePng(Path.Combine(originals, "a.png"), 2);
        File.SetLastWriteTimeUtc(Path.Combine(originals, "a.png"), DateTime.UtcNow.AddMinutes(1));
        Assert.Equal(1, ImageIndexer.Update(model, IndexPath, [library]).Embedded);

        var index = EmbeddingIndex.Load(IndexPath);
        var fresh = ClipModel.Normalize(model.EncodeImageFiles([Path.Combine(originals, "a.png")]).Single().Features!);
        Assert.Equal(fresh, index.EmbeddingOf(0).ToArray(), (a, b) => Math.Abs(a - b) < 1e-6f);
    }

    [Fact]
    public void AnIndexOfAnotherModelIsRefused()
    {
        using (var model = ZeroShotTestData.Load("vit-tiny-a")) ImageIndexer.Update(model, IndexPath, [Photos]);
        using var other = ZeroShotTestData.Load("rn-tiny-a");
        var error = Assert.Throws<IndexException>(() => ImageIndexer.Update(other, IndexPath, [Photos]));
        Assert.Contains("built with another model", error.Message);
        using var again = ZeroShotTestData.Load("vit-tiny-a");
        Assert.Contains("no such folder", Assert.Throws<ImageInputException>(() => ImageIndexer.Update(again, IndexPath, [Path.Combine(_folder, "nowhere")])).Message);
    }

    [Fact]
    public async Task DirectoryLinksAreNotFollowed()
    {
        // Followed, a link to the folder itself repeats every image ~40 times (until the path is too long); two such links make
        // the walk grow without end; a link back up from a subfolder does the same.
        Directory.CreateSymbolicLink(Path.Combine(Photos, "self"), ".");
        Directory.CreateSymbolicLink(Path.Combine(Photos, "again"), ".");
        Directory.CreateSymbolicLink(Path.Combine(Photos, "nested", "up"), Photos);
        string[] images = ["p0.png", "p1.png", "p2.png", "nested/p3.png", "nested/p4.png", "nested/p5.png", "nested/deeper/broken.png"];

        var walk = Task.Run(() => ImageIndexer.FindImages([Photos]));
        Assert.True(await Task.WhenAny(walk, Task.Delay(TimeSpan.FromSeconds(10))) == walk, "the walk did not finish in 10 s");
        Assert.Equal(images.Select(name => Path.Combine(Photos, name)).Order(StringComparer.Ordinal), await walk);

        // A link named as the folder to index is walked (as find -H does).
        string linked = Path.Combine(_folder, "linked");
        Directory.CreateSymbolicLink(linked, Photos);
        Assert.Equal(images.Select(name => Path.Combine(linked, name)).Order(StringComparer.Ordinal), ImageIndexer.FindImages([linked]));
    }

    [Fact]
    public void HiddenFilesAndFoldersAreSkipped()
    {
        SearchTestData.WritePng(Path.Combine(Photos, ".hidden.png"), 7);
        Directory.CreateDirectory(Path.Combine(Photos, ".thumbnails"));
        SearchTestData.WritePng(Path.Combine(Photos, ".thumbnails", "p0.png"), 8);
        Assert.Equal(7, ImageIndexer.FindImages([Photos]).Count);
        Assert.DoesNotContain(ImageIndexer.FindImages([Photos]), p => p.Contains("/.", StringComparison.Ordinal));
    }

    [Fact]
    public void FilesAndFoldersThatCannotBeOpenedAreReportedAsFailed()
    {
        // Names that are not UTF-8: .NET lists them with U+FFFD in place of the bad byte and then cannot open them.
        SearchTestData.Shell(Photos, """cp p0.png "$(printf '\377.png')" && mkdir "$(printf 'bad\376')" && cp p1.png "$(printf 'bad\376')/inside.png" """);
        try
        {
            using var model = ZeroShotTestData.Load("vit-tiny-a");
            var failures = new List<(string Path, string Message)>();
            var report = ImageIndexer.Update(model, IndexPath, [Photos], new IndexingOptions { Failed = (path, error) => failures.Add((path, error.Message)) });

            Assert.Equal([Path.Combine(Photos, "bad\uFFFD"), Path.Combine(Photos, "nested", "deeper", "broken.png"), Path.Combine(Photos, "\uFFFD.png")],
                failures.Select(f => f.Path).Order(StringComparer.Ordinal));
            Assert.All(failures.Where(f => f.Path.Contains('\uFFFD')), f => Assert.Contains("not valid UTF-8", f.Message));
            Assert.Equal((Failed: 3, Indexed: 6), (report.Failed, report.Indexed));
        }
        finally { SearchTestData.Shell(Photos, """rm -rf "$(printf '\377.png')" "$(printf 'bad\376')" """); } // Directory.Delete cannot name them either
    }

    [Fact]
    public void AnUnwritableIndexLocationIsRefusedBeforeAnyEmbedding()
    {
        string aFile = Path.Combine(_folder, "a-file");
        File.WriteAllText(aFile, "not a folder");
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        int progressReports = 0;
        foreach (var (indexPath, says) in new[] { (Path.Combine(aFile, "photos.mcidx"), "cannot write"), (Photos, "is a folder") })
        {
            var error = Assert.Throws<IndexException>(() => ImageIndexer.Update(model, indexPath, [Photos], new IndexingOptions { Progress = (_, _) => progressReports++ }));
            Assert.Contains(indexPath, error.Message);
            Assert.Contains(says, error.Message);
        }
        Assert.Equal(0, progressReports);
    }

    [Fact]
    public async Task ASecondWriterOfTheSameIndexIsRefusedWhileTheFirstRuns()
    {
        string other = Path.Combine(_folder, "other");
        Directory.CreateDirectory(other);
        SearchTestData.WritePng(Path.Combine(other, "o.png"), 50);
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        // The first run is held in the middle of its work (its progress callback waits) while the second starts.
        using var working = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var first = Task.Run(() => ImageIndexer.Update(model, IndexPath, [Photos], new IndexingOptions
        {
            Progress = (done, _) => { if (done == 0) { working.Set(); release.Wait(TimeSpan.FromMinutes(1)); } },
        }));
        Assert.True(working.Wait(TimeSpan.FromMinutes(1)), "the first run did not start embedding");
        try
        {
            var error = Assert.Throws<IndexException>(() => ImageIndexer.Update(model, IndexPath, [other]));
            Assert.Contains(IndexPath, error.Message);
            Assert.Contains("another run is writing this index", error.Message);
        }
        finally { release.Set(); }
        Assert.Equal(6, (await first).Indexed);
        Assert.False(File.Exists(IndexPath + ".lock"));
        Assert.Equal(6, EmbeddingIndex.Load(IndexPath).Count);

        // The first run is done: the next one may write. A lock file left by a killed run (the OS released its lock) is taken over.
        File.WriteAllText(IndexPath + ".lock", "12345\n");
        Assert.Equal(1, ImageIndexer.Update(model, IndexPath, [other]).Indexed);
        Assert.False(File.Exists(IndexPath + ".lock"));
    }

    [Fact]
    public void FindImagesWalksFoldersByExtension()
    {
        File.WriteAllText(Path.Combine(Photos, "UPPER.JPG"), "x");
        var found = ImageIndexer.FindImages([Photos, Path.Combine(Photos, "p0.png")]);
        Assert.Equal(8, found.Count);
        Assert.Equal(found.Order(StringComparer.Ordinal), found);
        Assert.All(found, p => Assert.True(Path.IsPathRooted(p)));
        Assert.DoesNotContain(found, p => p.EndsWith(".txt", StringComparison.Ordinal));
    }
}
