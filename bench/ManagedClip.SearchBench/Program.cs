using System.Diagnostics;
using System.Globalization;
using ManagedClip.Search;

// Exact cosine search over ROWS synthetic unit embeddings of DIM values (default 100,000 × 512, ViT-B/32's width):
// the time of one query (median and worst over QUERIES), and of writing and reading the index file.
int rows = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100_000;
int dim = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 512;
int queries = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 50;
const int Top = 10;

var random = new Random(42);
float[] RandomVector()
{
    var v = new float[dim];
    for (int i = 0; i < dim; i++) v[i] = (float)(random.NextDouble() * 2 - 1);
    return v;
}

var clock = Stopwatch.StartNew();
var index = new EmbeddingIndex(new string('0', 64), dim, "synthetic", capacity: rows);
for (int i = 0; i < rows; i++) index.Add(new IndexEntry($"/photos/{i / 1000:D3}/IMG_{i:D6}.jpg", 2_000_000 + i, 638_000_000_000_000_000 + i), RandomVector());
Console.WriteLine($"built {rows:N0} × {dim} in {clock.Elapsed.TotalSeconds:F2} s ({rows * (long)dim * 4 / (1 << 20)} MiB of embeddings)");

for (int i = 0; i < 5; i++) index.Search(RandomVector(), Top); // warm up (JIT, tiering)
var times = new List<double>();
for (int q = 0; q < queries; q++)
{
    var query = RandomVector();
    clock.Restart();
    var hits = index.Search(query, Top);
    times.Add(clock.Elapsed.TotalMilliseconds);
    if (hits.Length != Top) throw new InvalidOperationException("wrong hit count");
}
times.Sort();
Console.WriteLine($"search top-{Top}: median {times[times.Count / 2]:F2} ms, best {times[0]:F2} ms, worst {times[^1]:F2} ms over {queries} queries " +
    $"({rows * (long)dim / (times[times.Count / 2] / 1000) / 1e9:F1} G multiply-adds/s)");

string path = Path.Combine(Path.GetTempPath(), $"managedclip-searchbench-{Environment.ProcessId}.mcidx");
try
{
    clock.Restart();
    index.Save(path);
    Console.WriteLine($"save (temp file, fsync, rename): {clock.Elapsed.TotalMilliseconds:F0} ms, {new FileInfo(path).Length / (1 << 20)} MiB");
    clock.Restart();
    var loaded = EmbeddingIndex.Load(path);
    Console.WriteLine($"load (read, checksum, parse): {clock.Elapsed.TotalMilliseconds:F0} ms, {loaded.Count:N0} entries");
}
finally { File.Delete(path); }
Console.WriteLine($"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}, Vector512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}");
