using System.Diagnostics;
using System.Security.Cryptography;
using ManagedClip.Imaging;
using ManagedClip.Imaging.Jpeg;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ManagedClip.Bench;

/// <summary>
/// <c>managedclip-bench decode FOLDER [REPS]</c>: single-thread decode of every JPEG in FOLDER from bytes in memory, by
/// the managed decoder (JpegDecoder) and by ImageSharp's <c>Image.Load&lt;Rgb24&gt;</c>, interleaved per file so both see
/// the same machine load. Prints the median ms per image over files x reps and the GC bytes allocated per decode
/// (bench/decode/run.sh puts Pillow beside them). ImageSharp allocates its pixel buffers from its own pool outside
/// the GC heap, so its figure is near zero.
/// </summary>
static class DecodeBench
{
    public static void Run(string folder, int reps)
    {
        var files = Directory.GetFiles(folder, "*.jpg").Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToArray();
        if (files.Length == 0) throw new ArgumentException($"no .jpg files in {folder}");
        // ImageSharp parallelizes some row operations; one thread, as the other two run.
        var oneThread = Configuration.Default.Clone();
        oneThread.MaxDegreeOfParallelism = 1;
        var decoders = new (string Name, Action<byte[]> Decode)[]
        {
            ("managed", data => JpegDecoder.Decode(data, "bench", PreprocessOptions.DefaultMaxPixels)),
            ("imagesharp", data => { using var image = Image.Load<Rgb24>(oneThread, data); }),
        };
        // The managed decoder's bytes, each file's SHA-256 hashed in turn, for run.sh to compare with Pillow's.
        using (var all = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            foreach (var data in files) all.AppendData(SHA256.HashData(JpegDecoder.Decode(data, "bench", PreprocessOptions.DefaultMaxPixels).ToRgb()));
            Console.WriteLine($"sha256 managed {Convert.ToHexString(all.GetHashAndReset()).ToLowerInvariant()}");
        }
        var times = decoders.Select(_ => new List<double>()).ToArray();
        var allocated = new long[decoders.Length];
        var cpu = new TimeSpan[decoders.Length];
        using var process = Process.GetCurrentProcess();
        foreach (var (_, decode) in decoders) decode(files[0]); // JIT and tier-up warm-up
        foreach (var (_, decode) in decoders) decode(files[0]);
        for (int r = 0; r < reps; r++)
            foreach (var data in files)
                for (int d = 0; d < decoders.Length; d++)
                {
                    long bytes0 = GC.GetAllocatedBytesForCurrentThread();
                    process.Refresh();
                    var cpu0 = process.TotalProcessorTime;
                    long t0 = Stopwatch.GetTimestamp();
                    decoders[d].Decode(data);
                    times[d].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                    process.Refresh();
                    cpu[d] += process.TotalProcessorTime - cpu0;
                    allocated[d] += GC.GetAllocatedBytesForCurrentThread() - bytes0;
                }
        for (int d = 0; d < decoders.Length; d++)
        {
            var sorted = times[d].Order().ToArray();
            double perDecode = allocated[d] / (double)sorted.Length;
            Console.WriteLine($"{decoders[d].Name,-10} {sorted[sorted.Length / 2],8:0.0} ms/image (median of {sorted.Length}: {files.Length} files x {reps}), {perDecode / 1048576.0:0.0} MiB allocated per decode, process CPU / wall {cpu[d].TotalMilliseconds / sorted.Sum():0.00}");
        }
    }
}
