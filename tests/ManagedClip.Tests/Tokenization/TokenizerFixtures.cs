using System.Text.Json;
using ManagedClip.Tokenization;

namespace ManagedClip.Tests.Tokenization;

/// <summary>Locates the shared reference data (the repository's parent holds shared/) and the committed fixtures; loads each vocabulary once.</summary>
internal static class TokenizerFixtures
{
    private static readonly Lazy<ClipTokenizer> LazyGz = new(() => ClipTokenizer.FromBpeFile(BpeGzPath));
    private static readonly Lazy<ClipTokenizer> LazyHf = new(() => ClipTokenizer.FromVocabAndMerges(Path.Combine(HfFolder, "vocab.json"), Path.Combine(HfFolder, "merges.txt")));

    public static string SharedDir { get; } = FindUp(d => Directory.Exists(Path.Combine(d, "shared", "clip")), "a folder holding shared/clip") is var p ? Path.Combine(p, "shared") : "";

    public static string RepoDir { get; } = FindUp(d => File.Exists(Path.Combine(d, "tests", "fixtures", "tokenizer", "unicode_cases.json")), "the repository root");

    public static string BpeGzPath => Path.Combine(SharedDir, "clip", "bpe_simple_vocab_16e6.txt.gz");

    public static string HfFolder => Path.Combine(SharedDir, "reference", "models", "vit-tiny-a-hf");

    public static ClipTokenizer Gz => LazyGz.Value;

    public static ClipTokenizer Hf => LazyHf.Value;

    public static IReadOnlyList<(string Text, string? Normalized, int[] Ids)> ReferenceCases { get; } = Load(Path.Combine(SharedDir, "reference", "tokenizer_cases.json"));

    public static IReadOnlyList<(string Text, string? Normalized, int[] Ids)> UnicodeCases { get; } = Load(Path.Combine(RepoDir, "tests", "fixtures", "tokenizer", "unicode_cases.json"));

    public static TheoryData<int> Indices(int count)
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < count; i++) data.Add(i);
        return data;
    }

    private static List<(string, string?, int[])> Load(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var list = new List<(string, string?, int[])>();
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            var ids = c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var normalized = c.TryGetProperty("normalized", out var n) ? n.GetString() : null;
            list.Add((c.GetProperty("text").GetString()!, normalized, ids));
        }
        return list;
    }

    private static string FindUp(Func<string, bool> predicate, string what)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (predicate(dir.FullName)) return dir.FullName;
        throw new InvalidOperationException($"Could not find {what} above {AppContext.BaseDirectory}.");
    }
}
