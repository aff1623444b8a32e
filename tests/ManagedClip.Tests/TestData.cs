using System.Text.Json;

namespace ManagedClip.Tests;

/// <summary>Where the shared reference data lives (<c>../shared</c> beside the repository root), and the parity metric.</summary>
public static class TestData
{
    public static string SharedRoot { get; } = FindShared();
    public static string Reference => Path.Combine(SharedRoot, "reference");
    public static string ReferenceModel(string name) => Path.Combine(Reference, "models", name);
    public static string BpeVocabulary => Path.Combine(SharedRoot, "clip", "bpe_simple_vocab_16e6.txt.gz");
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    static string FindShared()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(Path.Combine(candidate, "reference"))) return candidate;
        }
        throw new DirectoryNotFoundException($"shared/reference not found above {AppContext.BaseDirectory}; the tests expect ../shared beside the repository");
    }

    static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ManagedClip.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("ManagedClip.sln not found above the test assembly");
    }

    public static JsonDocument ReadJson(string path) => JsonDocument.Parse(File.ReadAllBytes(path));

    public static float[][] Rows(JsonElement element) =>
        element.EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();

    /// <summary>
    /// The reference README's metric: ‖got − ref‖ over the spread of the reference rows, mean‖ref_i − mean(ref)‖.
    /// Random models give outputs close to one another, so the spread, not the norm, is the honest scale.
    /// Returns the worst row.
    /// </summary>
    public static double RelativeError(IReadOnlyList<float[]> got, IReadOnlyList<float[]> reference)
    {
        Assert.Equal(reference.Count, got.Count);
        int dim = reference[0].Length;
        var mean = new double[dim];
        foreach (var row in reference) for (int j = 0; j < dim; j++) mean[j] += row[j] / (double)reference.Count;
        double spread = reference.Average(row => Math.Sqrt(row.Select((v, j) => (v - mean[j]) * (v - mean[j])).Sum()));
        double worst = 0;
        for (int i = 0; i < got.Count; i++)
        {
            Assert.Equal(dim, got[i].Length);
            double distance = Math.Sqrt(got[i].Select((v, j) => ((double)v - reference[i][j]) * ((double)v - reference[i][j])).Sum());
            worst = Math.Max(worst, distance / spread);
        }
        return worst;
    }
}
