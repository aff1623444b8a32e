using System.Diagnostics;
using ManagedClip.ZeroShot;
using Xunit.Abstractions;

namespace ManagedClip.Tests.ZeroShot;

/// <summary>The CLIP paper's ImageNet ensemble (1000 classes × 80 templates = 80,000 prompts): built once, then read from the cache.</summary>
public sealed class ImageNetEnsembleTests(ITestOutputHelper output) : IDisposable
{
    readonly string _cache = Directory.CreateTempSubdirectory("managedclip-imagenet-").FullName;

    public void Dispose() => Directory.Delete(_cache, recursive: true);

    [Fact]
    public void EightyThousandPromptsBuildOnceAndAreReadFromTheCacheAfter()
    {
        var (classes, templates) = ZeroShotTestData.ImageNet();
        Assert.Equal(1000, classes.Length);
        Assert.Equal(80, templates.Length);
        // rn-tiny-a's text tower (width 64) keeps this test to seconds; vit-tiny-a's (width 128) takes about three times longer.
        using var model = ZeroShotTestData.Load("rn-tiny-a");
        var options = new ZeroShotOptions { Cache = new ClassEmbeddingCache(_cache) };
        int reports = 0;

        var clock = Stopwatch.StartNew();
        var built = ZeroShotClassifier.Create(model, classes, templates, options with { Progress = (_, _) => reports++ });
        var buildTime = clock.Elapsed;
        Assert.False(built.FromCache);
        Assert.Equal(80_000, built.PromptCount);
        Assert.True(built.EncodedPrompts is > 79_000 and <= 80_000, $"{built.EncodedPrompts} prompts encoded"); // two class names repeat
        Assert.True(reports > 10);

        clock.Restart();
        var cached = ZeroShotClassifier.Create(model, classes, templates, options);
        var hitTime = clock.Elapsed;
        Assert.True(cached.FromCache);
        Assert.Equal(0, cached.EncodedPrompts);
        Assert.Equal(built.ClassEmbeddings.ToArray(), cached.ClassEmbeddings.ToArray());
        output.WriteLine($"rn-tiny-a, 80,000 prompts ({built.EncodedPrompts} distinct): built in {buildTime.TotalSeconds:F1} s, cache hit in {hitTime.TotalSeconds:F2} s ({new FileInfo(cached.CachePath!).Length / 1024} KiB)");

        // "missile" and "sunglasses" appear twice in the edited names: their rows are the same vector.
        int first = Array.IndexOf(classes, "missile"), second = Array.LastIndexOf(classes, "missile");
        Assert.NotEqual(first, second);
        int dim = model.EmbedDim;
        Assert.Equal(cached.ClassEmbeddings.Slice(first * dim, dim).ToArray(), cached.ClassEmbeddings.Slice(second * dim, dim).ToArray());

        // One template changed: the whole set is built again.
        var changed = templates.ToArray();
        changed[^1] = "a tattoo of my {}.";
        var rebuilt = ZeroShotClassifier.Create(model, classes.Take(50).ToArray(), changed, options);
        Assert.False(rebuilt.FromCache);
    }
}
