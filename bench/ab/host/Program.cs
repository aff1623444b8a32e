using System.Reflection;
using System.Runtime.Loader;

// In-process interleaved A/B: each build of the library (a folder with adapter.dll and its dependencies, made by ab.sh) is
// loaded into its own AssemblyLoadContext, and the timed calls alternate between the builds round by round, so that a
// neighbour's burst on a shared machine hits every build alike. Prints best, p25 and median per build, and how far each
// build's output is from the first one's.
//   ManagedClip.AB gemm "M K N THREADS" REPS ROUNDS DIR...
//   ManagedClip.AB model CHECKPOINT image|text BATCH THREADS REPS ROUNDS DIR...
//   ManagedClip.AB load CHECKPOINT REPS ROUNDS DIR...
if (args.Length < 5 || args[0] is not ("gemm" or "model" or "load"))
{
    Console.Error.WriteLine("usage: ManagedClip.AB gemm \"M K N THREADS\" REPS ROUNDS DIR... | model CHECKPOINT image|text BATCH THREADS REPS ROUNDS DIR... | load CHECKPOINT REPS ROUNDS DIR...");
    return 2;
}
bool gemm = args[0] == "gemm";
var dirs = args.Skip(args[0] == "model" ? 7 : 4).Select(Path.GetFullPath).ToArray();
var adapters = dirs.Select(d => new BuildContext(d).LoadFromAssemblyPath(Path.Combine(d, "adapter.dll")).GetType("Adapter")!).ToArray();
object? Call(Type t, string name, params object[] a) => t.GetMethod(name)!.Invoke(null, a);
var times = dirs.Select(_ => new List<double>()).ToArray();
if (gemm)
{
    var s = args[1].Split(' ').Select(int.Parse).ToArray();
    int reps = int.Parse(args[2]), rounds = int.Parse(args[3]);
    double gflop = 2.0 * s[0] * s[1] * s[2] / 1e9;
    foreach (var t in adapters) { Call(t, "GemmSetup", s[0], s[1], s[2]); Call(t, "Gemm", s[3], 2); }
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < adapters.Length; i++) times[i].AddRange((double[])Call(adapters[i], "Gemm", s[3], reps)!);
    for (int i = 0; i < adapters.Length; i++)
        Console.WriteLine($"{args[1],-18} {dirs[i],-40} GFLOP/s best {gflop / Quantile(times[i], 0):0.0} p25 {gflop / Quantile(times[i], 0.25):0.0} " +
            $"median {gflop / Quantile(times[i], 0.5):0.0}  checksum {(double)Call(adapters[i], "Checksum")!:0.000}");
}
else if (args[0] == "load")
{
    string path = args[1];
    int reps = int.Parse(args[2]), rounds = int.Parse(args[3]);
    foreach (var t in adapters) Call(t, "Load", path, 1);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < adapters.Length; i++) times[i].AddRange((double[])Call(adapters[i], "Load", path, reps)!);
    for (int i = 0; i < adapters.Length; i++)
        Console.WriteLine($"load {Path.GetFileName(path)} {dirs[i],-40} seconds best {Quantile(times[i], 0):0.000} p25 {Quantile(times[i], 0.25):0.000} " +
            $"median {Quantile(times[i], 0.5):0.000} of {times[i].Count}  (load {LoadAverage()})");
}
else
{
    string path = args[1], tower = args[2];
    int batch = int.Parse(args[3]), threads = int.Parse(args[4]), reps = int.Parse(args[5]), rounds = int.Parse(args[6]);
    foreach (var t in adapters) { Call(t, "ModelSetup", path, threads, batch); Call(t, "Model", tower, 2); }
    var outputs = adapters.Select(t => (float[])Call(t, "ModelOutput", tower)!).ToArray();
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < adapters.Length; i++) times[i].AddRange((double[])Call(adapters[i], "Model", tower, reps)!);
    for (int i = 0; i < adapters.Length; i++)
    {
        double diff = outputs[i].Zip(outputs[0], (a, b) => Math.Abs((double)a - b)).Max();
        Console.WriteLine($"{tower} b{batch} t{threads} {dirs[i],-40} items/s best {batch / Quantile(times[i], 0):0.00} p25 {batch / Quantile(times[i], 0.25):0.00} " +
            $"median {batch / Quantile(times[i], 0.5):0.00}  (max |Δ| vs first {diff:g3}; load {LoadAverage()})");
    }
}
return 0;

static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";

static double Quantile(List<double> seconds, double q)
{
    var sorted = seconds.Order().ToList();
    return sorted[(int)Math.Min(sorted.Count - 1, q * sorted.Count)];
}

/// <summary>Resolves the library and its dependencies from one build's folder; everything else from the default context.</summary>
sealed class BuildContext : AssemblyLoadContext
{
    readonly string _folder;

    public BuildContext(string folder) : base(folder) => _folder = folder;

    protected override Assembly? Load(AssemblyName name)
    {
        string path = Path.Combine(_folder, name.Name + ".dll");
        return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
    }
}
