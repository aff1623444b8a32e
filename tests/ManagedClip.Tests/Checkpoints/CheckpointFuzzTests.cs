using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Checkpoints;

/// <summary>
/// Seeded mutations of the reference checkpoints' headers (shapes, dtypes, offsets, names, types of values) and data
/// bytes: ClipModel.Load either refuses the file with a CheckpointException naming it, or loads a model that encodes a
/// text and an image valid for its configuration. Any other exception fails the test with the seed and case printed.
/// </summary>
public sealed class CheckpointFuzzTests(ITestOutputHelper output) : IDisposable
{
    const int Seed = 20261203, MaxCases = 150;
    static readonly TimeSpan TimeBudget = TimeSpan.FromSeconds(12);

    readonly string _folder = Directory.CreateTempSubdirectory("managedclip-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    sealed record Source(string Folder, JsonObject Header, byte[] Data);

    static Source ReadSource(string name)
    {
        string folder = TestData.ReferenceModel(name);
        byte[] file = File.ReadAllBytes(Path.Combine(folder, "model.safetensors"));
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = JsonNode.Parse(file.AsSpan(8, headerLength))!.AsObject();
        return new Source(folder, header, file[(8 + headerLength)..]);
    }

    [Fact]
    public void MutatedCheckpointsLoadOrAreRefusedNamingTheFile()
    {
        var sources = new[] { "vit-tiny-a", "rn-tiny-a", "vit-tiny-a-hf" }.Select(ReadSource).ToArray();
        var random = new Random(Seed);
        var failures = new List<string>();
        var clock = Stopwatch.StartNew();
        int cases = 0, loaded = 0;
        for (; cases < MaxCases && clock.Elapsed < TimeBudget; cases++)
        {
            var source = sources[random.Next(sources.Length)];
            var header = source.Header.DeepClone().AsObject();
            byte[] data = source.Data;
            var applied = new List<string>();
            int mutations = random.Next(1, 4);
            for (int m = 0; m < mutations; m++) applied.Add(MutateHeader(header, random));
            if (random.Next(3) == 0)
            {
                (data, string what) = MutateData(data, random);
                applied.Add(what);
            }

            string folder = Path.Combine(_folder, $"case{cases}");
            Directory.CreateDirectory(folder);
            string path = Path.Combine(folder, "model.safetensors");
            WriteCheckpoint(path, header, data);
            if (File.Exists(Path.Combine(source.Folder, "config.json")))
                File.Copy(Path.Combine(source.Folder, "config.json"), Path.Combine(folder, "config.json"));

            string label = $"seed {Seed}, case {cases} ({Path.GetFileName(source.Folder)}: {string.Join("; ", applied)})";
            try
            {
                using var model = ClipModel.Load(folder);
                loaded++;
                EncodeValidInputs(model);
            }
            catch (CheckpointException e) when (e.Message.Contains(folder, StringComparison.Ordinal)) { }
            catch (Exception e) { failures.Add($"{label}: {e.GetType().Name}: {e.Message}"); }
            finally { Directory.Delete(folder, recursive: true); }
        }
        output.WriteLine($"seed {Seed}: {cases} cases in {clock.Elapsed.TotalSeconds:0.0} s, {loaded} loaded, {cases - loaded - failures.Count} refused");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(cases >= 20, $"only {cases} cases ran within {TimeBudget}");
        Assert.True(loaded < cases, "no mutation was refused: the mutations do not reach the checks");
    }

    /// <summary>An input each model accepts by its own configuration: [start?, end-of-text] ids and one zero image.</summary>
    static void EncodeValidInputs(ClipModel model)
    {
        var text = model.Config.Text;
        int[] ids = text.ContextLength >= 2 ? [0, text.EndOfTextId] : [text.EndOfTextId];
        Assert.Equal(model.EmbedDim, model.EncodeTokens([ids])[0].Length);
        Assert.Equal(model.EmbedDim, model.EncodeImage(new float[3 * model.ImageSize * model.ImageSize]).Length);
    }

    static string MutateHeader(JsonObject header, Random random)
    {
        var names = header.Select(p => p.Key).Where(k => k != "__metadata__").ToArray();
        string name = names[random.Next(names.Length)];
        var entry = header[name] as JsonObject;
        switch (random.Next(8))
        {
            case 0 when entry is not null && entry["shape"] is JsonArray shape:
            {
                // Another shape: scalar, a zero, a doubled, swapped, added or dropped dimension, or an absurd one.
                var dims = shape.Select(d => (JsonNode?)d!.DeepClone()).ToList();
                int choice = random.Next(6);
                if (choice == 0) dims.Clear();
                else if (choice == 1 && dims.Count > 0) dims[random.Next(dims.Count)] = 0;
                else if (choice == 2 && dims.Count > 0) { int i = random.Next(dims.Count); dims[i] = (int)dims[i]! * 2; }
                else if (choice == 3 && dims.Count > 1) dims.Reverse();
                else if (choice == 4) dims.Add(1);
                else if (dims.Count > 0) dims[random.Next(dims.Count)] = random.Next(2) == 0 ? int.MaxValue : -1;
                entry["shape"] = new JsonArray(dims.ToArray());
                return $"shape of '{name}' -> {Json(entry["shape"])}";
            }
            case 1 when entry is not null:
            {
                string[] dtypes = ["F16", "BF16", "F64", "F32", "I64", "I8", "BOOL", "Q4"];
                entry["dtype"] = dtypes[random.Next(dtypes.Length)];
                return $"dtype of '{name}' -> {entry["dtype"]}";
            }
            case 2 when entry is not null && entry["data_offsets"] is JsonArray offsets:
            {
                long begin = (long)offsets[0]!, end = (long)offsets[1]!;
                JsonNode?[] changed = random.Next(4) switch
                {
                    0 => [begin + random.Next(-64, 65), end],
                    1 => [begin, end + random.Next(-64, 65)],
                    2 => [end, begin],
                    _ => [begin.ToString(), end],
                };
                entry["data_offsets"] = new JsonArray(changed);
                return $"data_offsets of '{name}' -> {Json(entry["data_offsets"])}";
            }
            case 3:
            {
                // Renamed: another tensor's name, a module. prefix, an absurd layer index, or gone.
                var node = header[name]!.DeepClone();
                header.Remove(name);
                string renamed = random.Next(4) switch
                {
                    0 => "module." + name,
                    1 => System.Text.RegularExpressions.Regex.Replace(name, @"\.\d+\.", ".99999999999."),
                    2 => name + ".extra",
                    _ => "",
                };
                if (renamed.Length > 0 && !header.ContainsKey(renamed)) header[renamed] = node;
                return renamed.Length > 0 ? $"'{name}' renamed '{renamed}'" : $"'{name}' removed";
            }
            case 4:
            {
                JsonNode?[] values = [JsonValue.Create(7), JsonValue.Create("F32"), new JsonArray(), null, new JsonObject()];
                var value = values[random.Next(values.Length)];
                if (entry is not null && random.Next(2) == 0)
                {
                    string[] keys = ["dtype", "shape", "data_offsets"];
                    string key = keys[random.Next(keys.Length)];
                    entry[key] = value;
                    return $"'{name}'.{key} -> {Json(value)}";
                }
                header[name] = value;
                return $"'{name}' -> {Json(value)}";
            }
            case 5 when entry is not null && entry["shape"] is JsonArray shape && shape.Count >= 2:
            {
                // Same element count, other split (e.g. [768, 3072] -> [1536, 1536]): passes the byte-length check.
                int a = (int)shape[0]!, b = (int)shape[1]!;
                if (a % 2 == 0) entry["shape"] = new JsonArray([a / 2, b * 2, .. shape.Skip(2).Select(d => (JsonNode?)d!.DeepClone())]);
                return $"shape of '{name}' -> {Json(entry["shape"])}";
            }
            case 6 when entry is not null:
                entry["shape"] = new JsonArray(); entry["data_offsets"] = new JsonArray(0, 0); entry["dtype"] = "F32";
                return $"'{name}' -> empty scalar";
            default:
                header["__metadata__"] = random.Next(2) == 0 ? new JsonArray() : new JsonObject { ["format"] = new JsonArray() };
                return "__metadata__ changed";
        }
    }

    static string Json(JsonNode? node) => node is null ? "null" : node.ToJsonString();

    static (byte[] Data, string What) MutateData(byte[] data, Random random)
    {
        var copy = (byte[])data.Clone();
        if (random.Next(4) == 0)
        {
            Array.Resize(ref copy, random.Next(copy.Length));
            return (copy, $"data truncated to {copy.Length} bytes");
        }
        int flips = random.Next(1, 16);
        for (int i = 0; i < flips; i++) copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
        return (copy, $"{flips} bits of data flipped");
    }

    static void WriteCheckpoint(string path, JsonObject header, byte[] data)
    {
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        using var stream = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        stream.Write(data);
    }
}
