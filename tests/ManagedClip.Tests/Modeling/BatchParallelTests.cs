using ManagedClip.Tests.Support;

namespace ManagedClip.Tests.Modeling;

/// <summary>
/// With several threads a batch is split among them (each share runs single-threaded) when it divides well, else the
/// kernels run multi-threaded; either way every item's features are bit-identical to a one-thread, one-item run.
/// </summary>
public sealed class BatchParallelTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-batch-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("vit-w192-l3-openai-f32")]
    [InlineData("rn-w32-openai-f16")]
    public void FeaturesDoNotDependOnThreadsOrBatchSplit(string name)
    {
        var spec = SyntheticCases.Load(name);
        string path = SyntheticCheckpoint.Write(Path.Combine(_folder, name + ".safetensors"), spec);
        int r = spec.ImageResolution, imageLength = 3 * r * r;
        var random = new Random(3);
        var pixels = Enumerable.Range(0, 9 * imageLength).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        var ids = Enumerable.Range(0, 9).Select(i =>
        {
            var row = new int[spec.ContextLength];
            row[0] = 49406;
            for (int t = 1; t < 3 + 2 * i; t++) row[t] = 1 + 97 * t + i;
            row[3 + 2 * i] = 49407;
            return row;
        }).ToArray();

        float[][] images1, texts1;
        using (var one = ClipModel.Load(path, new ClipModelOptions { MaxThreads = 1 }))
        {
            images1 = Enumerable.Range(0, 9).Select(i => one.EncodeImage(pixels.AsSpan(i * imageLength, imageLength))).ToArray();
            texts1 = ids.Select(row => one.EncodeTokens([row])[0]).ToArray();
        }
        foreach (int threads in new[] { 2, 3 })
        {
            using var model = ClipModel.Load(path, new ClipModelOptions { MaxThreads = threads });
            foreach (int batch in new[] { 1, 2, 3, 8, 9 })   // unsplit (1, 3 with 2 threads), split evenly, split unevenly
            {
                var images = model.EncodeImages(pixels.AsSpan(0, batch * imageLength), batch);
                var texts = model.EncodeTokens(ids[..batch]);
                for (int b = 0; b < batch; b++)
                {
                    Assert.Equal(images1[b], images[b]);
                    Assert.Equal(texts1[b], texts[b]);
                }
            }
        }
    }

    /// <summary>A part that throws surfaces its own exception, and the parts that finished (helping the others) do not wait forever.</summary>
    [Fact]
    public async Task FailingPartSurfacesItsExceptionWithoutHangingTheOthers()
    {
        var run = Task.Run(() => ManagedClip.Backends.Cpu.BatchParallel.Run(8, ManagedClip.Kernels.KernelContext.Create(2), (start, _, _) =>
        {
            if (start == 0) throw new InvalidOperationException("part 0 failed");
            Thread.Sleep(50);
        }));
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("part 0 failed", error.Message);
    }
}
