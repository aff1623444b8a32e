using ManagedClip.Imaging;

namespace ManagedClip.Tests.Checkpoints;

/// <summary>
/// After Load a model owns everything it computes with: nothing done to the checkpoint on disk, and no Dispose racing a
/// running call, may take the process down or change a result.
/// </summary>
public sealed class ModelLifetimeTests : IDisposable
{
    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-lifetime-").FullName;
    static string Vit => TestData.ReferenceModel("vit-tiny-a");

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    string CopyOfVit()
    {
        string path = Path.Combine(_folder, "model.safetensors");
        File.Copy(Path.Combine(Vit, "model.safetensors"), path, overwrite: true);
        return path;
    }

    static readonly int[][] Prompts = [[49406, 320, 1125, 539, 320, 2368, 49407], [49406, 320, 1929, 49407]];

    [Fact]
    public void TruncatingTheCheckpointAfterLoadChangesNothing()
    {
        string path = CopyOfVit();
        var (pixels, shape) = NpyFile.Read(Path.Combine(Vit, "random_input.npy"));
        using var model = ClipModel.Load(path);
        var text = model.EncodeTokens(Prompts);
        var images = model.EncodeImages(pixels, shape[0]);
        string fingerprint = model.Fingerprint;

        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write)) stream.SetLength(0);

        Assert.Equal(text, model.EncodeTokens(Prompts));
        Assert.Equal(images, model.EncodeImages(pixels, shape[0]));
        Assert.Equal(fingerprint, model.Fingerprint);
    }

    [Fact]
    public void OverwritingTheCheckpointInPlaceAfterLoadChangesNothing()
    {
        // What `cp other.safetensors model.safetensors` does: the same file, truncated and written again.
        string path = CopyOfVit();
        long length = new FileInfo(path).Length;
        using var model = ClipModel.Load(path);
        var text = model.EncodeTokens(Prompts);

        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            stream.SetLength(0);
            var other = new byte[1 << 20];
            new Random(5).NextBytes(other);
            for (long written = 0; written < length; written += other.Length)
                stream.Write(other, 0, (int)Math.Min(other.Length, length - written));
        }

        Assert.Equal(text, model.EncodeTokens(Prompts));
    }

    [Fact]
    public void DisposeWhileOtherThreadsEncodeNeverCrashes()
    {
        var (pixels, shape) = NpyFile.Read(Path.Combine(Vit, "random_input.npy"));
        var longPrompts = Enumerable.Range(0, 8).Select(b => new[] { 49406 }.Concat(Enumerable.Range(300 + b, 75)).Append(49407).ToArray()).ToArray();
        for (int round = 0; round < 4; round++)
        {
            var model = ClipModel.Load(CopyOfVit(), new ClipModelOptions { MaxThreads = 1, VocabularyPath = TestData.BpeVocabulary });
            var expectedText = model.EncodeTokens(longPrompts);
            var expectedImages = model.EncodeImages(pixels, shape[0]);
            var expectedPhoto = model.EncodeTexts(["a photo of a cat"]);
            Action[] calls =
            [
                () => Assert.Equal(expectedText, model.EncodeTokens(longPrompts)),
                () => Assert.Equal(expectedImages, model.EncodeImages(pixels, shape[0])),
                () => Assert.Equal(expectedPhoto, model.EncodeTexts(["a photo of a cat"])),
                () => Assert.Equal(64, model.Fingerprint.Length),
            ];
            int completed = 0;
            var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
            var workers = calls.Select(call => new Thread(() =>
            {
                // Each call either completes with the right result or, once Dispose has begun, throws ObjectDisposedException.
                while (true)
                {
                    try { call(); Interlocked.Increment(ref completed); }
                    catch (ObjectDisposedException) { return; }
                    catch (Exception e) { failures.Enqueue(e); return; }
                }
            })).ToArray();
            foreach (var worker in workers) worker.Start();
            while (Volatile.Read(ref completed) < 8 && failures.IsEmpty) Thread.Sleep(1);
            Thread.Sleep(10 * round);
            model.Dispose();
            Assert.All(workers, worker => Assert.True(worker.Join(TimeSpan.FromSeconds(30)), "a call hung after Dispose"));
            Assert.Empty(failures);
            Assert.Throws<ObjectDisposedException>(() => model.EncodeTokens(longPrompts));
            Assert.Throws<ObjectDisposedException>(() => model.EncodeImageFiles([Path.Combine(_folder, "x.png")]).ToList());
            Assert.Throws<ObjectDisposedException>(() => model.Fingerprint);
        }
    }

    [Fact]
    public void DisposeWaitsForRunningCallsAndRefusesNewOnes()
    {
        var gate = new CallGate();
        var running = gate.Enter(this);
        var closing = new Thread(gate.Close);
        closing.Start();
        Assert.False(closing.Join(200), "Close returned while a call was still running");
        Assert.Throws<ObjectDisposedException>(() => gate.Enter(this));
        running.Dispose();
        Assert.True(closing.Join(TimeSpan.FromSeconds(10)), "Close did not return once the running call left");
        Assert.Throws<ObjectDisposedException>(() => gate.Enter(this));
        gate.Close(); // a second Dispose is harmless
    }
}
