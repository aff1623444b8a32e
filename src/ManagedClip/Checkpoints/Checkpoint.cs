using System.Text.Json;
using System.Text.RegularExpressions;
using ManagedClip.Kernels;

namespace ManagedClip.Checkpoints;

/// <summary>
/// A CLIP checkpoint seen through one canonical naming, the OpenAI one (the state dict of <c>clip/model.py CLIP</c>): <c>visual.conv1.weight</c>,
/// <c>transformer.resblocks.3.attn.in_proj_weight</c>, … Hugging Face folders are mapped onto it (q/k/v
/// concatenated into <c>in_proj</c>, the two projections transposed), so the model code never knows which
/// layout the weights came from. Tensors stay in the files until read; reading one copies it out (see <see cref="SafetensorsFile"/>).
/// </summary>
public sealed partial class Checkpoint : IDisposable
{
    readonly SafetensorsFile[] _files;
    readonly Dictionary<string, CanonicalTensor> _tensors;

    /// <summary>The file or folder the user named.</summary>
    public string SourcePath { get; }
    /// <summary>The folder holding the weights: where a vocabulary or preprocessor_config.json is looked for.</summary>
    public string Folder { get; }
    /// <summary>The naming the checkpoint uses: OpenAI's or Hugging Face's.</summary>
    public CheckpointFormat Format { get; }
    /// <summary>The architecture, inferred from the tensor shapes (and config.json for Hugging Face folders).</summary>
    public ClipConfig Config { get; }
    /// <summary>The safetensors files read (one, or the shards of a sharded checkpoint).</summary>
    public IReadOnlyList<string> Files => _files.Select(f => f.Path).ToArray();

    /// <summary>The floating-point dtype most parameters are stored in (F32, F16, BF16).</summary>
    public TensorDType StorageDType { get; }

    /// <summary>Learnable parameters, as <c>sum(p.numel() for p in model.parameters())</c> counts them: BatchNorm running statistics and integer buffers excluded.</summary>
    public long ParameterCount { get; }

    Checkpoint(string sourcePath, string folder, CheckpointFormat format, SafetensorsFile[] files, Dictionary<string, CanonicalTensor> tensors, Func<Checkpoint, ClipConfig> configure)
    {
        SourcePath = sourcePath; Folder = folder; Format = format; _files = files; _tensors = tensors;
        var floating = files.SelectMany(f => f.Tensors.Values).Where(t => t.IsFloatingPoint).ToArray();
        StorageDType = floating.GroupBy(t => t.DType).OrderByDescending(g => g.Sum(t => t.ElementCount)).Select(g => g.Key).FirstOrDefault(TensorDType.F32);
        ParameterCount = floating.Where(t => !t.Name.EndsWith(".running_mean", StringComparison.Ordinal) && !t.Name.EndsWith(".running_var", StringComparison.Ordinal))
            .Sum(t => t.ElementCount);
        Config = configure(this);
    }

    /// <summary>Opens an OpenAI/open_clip <c>.safetensors</c> file, a sharded index, or a folder of either layout.</summary>
    public static Checkpoint Open(string path)
    {
        if (Directory.Exists(path)) return OpenFolder(path);
        if (!File.Exists(path)) throw new CheckpointException($"{path}: no such file or folder");
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        if (path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)) return OpenFiles(path, folder, OpenShards(path));
        return OpenFiles(path, folder, [SafetensorsFile.Open(path)]);
    }

    static Checkpoint OpenFolder(string folder)
    {
        string Candidate(string name) => System.IO.Path.Combine(folder, name);
        string index = Candidate("model.safetensors.index.json");
        if (File.Exists(index)) return OpenFiles(folder, folder, OpenShards(index));
        foreach (var name in new[] { "model.safetensors", "open_clip_model.safetensors" })
            if (File.Exists(Candidate(name))) return OpenFiles(folder, folder, [SafetensorsFile.Open(Candidate(name))]);
        var others = Directory.GetFiles(folder, "*.safetensors");
        if (others.Length == 1) return OpenFiles(folder, folder, [SafetensorsFile.Open(others[0])]);
        throw new CheckpointException(others.Length == 0
            ? $"{folder}: no checkpoint found: expected model.safetensors (with config.json, Hugging Face layout), open_clip_model.safetensors, or model.safetensors.index.json"
            : $"{folder}: {others.Length} .safetensors files and none named model.safetensors or open_clip_model.safetensors; pass the file itself");
    }

    /// <summary>Sharded checkpoints: <c>model.safetensors.index.json</c> maps each tensor to the shard that holds it.</summary>
    static SafetensorsFile[] OpenShards(string indexPath)
    {
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        Dictionary<string, string> weightMap = new(StringComparer.Ordinal);
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{indexPath}: sharded checkpoint index has no weight_map object");
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointException($"{indexPath}: weight_map entry '{entry.Name}' is not a file name");
                weightMap[entry.Name] = entry.Value.GetString()!;
            }
        }
        catch (JsonException e) { throw new CheckpointException($"{indexPath}: sharded checkpoint index is not valid JSON ({e.Message})", e); }
        catch (IOException e) { throw new CheckpointException($"{indexPath}: cannot read ({e.Message})", e); }
        if (weightMap.Count == 0) throw new CheckpointException($"{indexPath}: sharded checkpoint index has an empty weight_map");

        var shards = new List<SafetensorsFile>();
        try
        {
            foreach (var shardName in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                if (shardName.Contains('/') || shardName.Contains('\\') || shardName == "..")
                    throw new CheckpointException($"{indexPath}: shard name '{shardName}' must be a file name in the same folder");
                shards.Add(SafetensorsFile.Open(System.IO.Path.Combine(folder, shardName)));
            }
            foreach (var (tensor, shardName) in weightMap)
            {
                var shard = shards.First(s => System.IO.Path.GetFileName(s.Path) == shardName);
                if (!shard.Tensors.ContainsKey(tensor))
                    throw new CheckpointException($"{indexPath}: tensor '{tensor}' is mapped to {shardName}, which does not contain it");
            }
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var shard in shards)
                foreach (var name in shard.Tensors.Keys)
                    if (!seen.Add(name)) throw new CheckpointException($"{shard.Path}: tensor '{name}' also appears in another shard");
            return shards.ToArray();
        }
        catch
        {
            foreach (var shard in shards) shard.Dispose();
            throw;
        }
    }

    static Checkpoint OpenFiles(string sourcePath, string folder, SafetensorsFile[] files)
    {
        try
        {
            var entries = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            foreach (var file in files)
                foreach (var (name, entry) in file.Tensors)
                    entries[name] = entry;
            string describe = files.Length == 1 ? files[0].Path : sourcePath;

            if (entries.Keys.Any(k => k.StartsWith("vision_model.", StringComparison.Ordinal) || k.StartsWith("text_model.", StringComparison.Ordinal)))
            {
                string configPath = System.IO.Path.Combine(folder, "config.json");
                if (!File.Exists(configPath))
                    throw new CheckpointException($"{describe}: Hugging Face CLIPModel weights need their config.json beside them in {folder}");
                var hf = HuggingFaceConfig.Read(configPath);
                var tensors = MapHuggingFace(entries, hf);
                return new Checkpoint(sourcePath, folder, CheckpointFormat.HuggingFace, files, tensors, c => c.InferHuggingFaceConfig(hf));
            }

            // open_clip checkpoints saved from a DataParallel model carry a "module." prefix; load_checkpoint strips it.
            var openAi = new Dictionary<string, CanonicalTensor>(StringComparer.Ordinal);
            foreach (var (name, entry) in entries)
            {
                string canonical = name.StartsWith("module.", StringComparison.Ordinal) ? name["module.".Length..] : name;
                if (openAi.TryGetValue(canonical, out var other))
                    throw new CheckpointException($"{describe}: both '{other.Description}' and '{name}' are present; which one is '{canonical}' is ambiguous");
                openAi[canonical] = new CanonicalTensor.Stored(entry, name);
            }
            if (openAi.ContainsKey("token_embedding.weight") && openAi.Keys.Any(k => k.StartsWith("visual.", StringComparison.Ordinal)))
                return new Checkpoint(sourcePath, folder, CheckpointFormat.OpenAI, files, openAi, c => c.InferOpenAIConfig());

            var sample = string.Join(", ", entries.Keys.Order(StringComparer.Ordinal).Take(5).Select(k => $"'{k}'"));
            throw new CheckpointException($"{describe}: unknown checkpoint layout: expected OpenAI/open_clip names (visual.*, token_embedding.weight) or Hugging Face CLIPModel names (vision_model.*, text_model.*); found {entries.Count} tensors such as {sample}");
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    // ---- reading tensors by canonical name ----------------------------------------------------------

    /// <summary>Whether the checkpoint holds a tensor of this canonical (OpenAI) name.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The canonical names present, for inference and for messages.</summary>
    public IEnumerable<string> Names => _tensors.Keys;

    /// <summary>The shape of a tensor, by canonical (OpenAI) name.</summary>
    /// <exception cref="CheckpointException">The checkpoint has no such tensor; the message names the file and the name looked for.</exception>
    public int[] ShapeOf(string name) => Lookup(name).Shape;

    /// <summary>Reads a tensor as fp32 after checking it has the shape the model expects; the error names file, tensor, expected and found shape.</summary>
    public float[] Read(string name, params int[] expectedShape)
    {
        var tensor = Lookup(name);
        CheckShape(tensor, expectedShape);
        // Every element is written by the read: zeroing the array first would only touch its memory twice.
        var values = GC.AllocateUninitializedArray<float>(checked((int)tensor.Shape.Aggregate(1L, (n, d) => n * d)));
        tensor.Read(values, this);
        return values;
    }

    /// <summary>Reads a tensor as fp32 into <paramref name="destination"/> (exactly its element count) after checking its shape: for loaders that pack weights from a reused buffer.</summary>
    public void ReadInto(string name, Span<float> destination, params int[] expectedShape)
    {
        var tensor = Lookup(name);
        CheckShape(tensor, expectedShape);
        long count = tensor.Shape.Aggregate(1L, (n, d) => n * d);
        if (destination.Length != count) throw new ArgumentException($"destination holds {destination.Length} values, '{name}' has {count}", nameof(destination));
        tensor.Read(destination, this);
    }

    /// <summary>A scalar such as <c>logit_scale</c> (stored as [] or [1]).</summary>
    public float ReadScalar(string name)
    {
        var tensor = Lookup(name);
        if (tensor.Shape.Aggregate(1L, (n, d) => n * d) != 1)
            throw new CheckpointException($"{Describe(tensor)}: expected a scalar, found shape {FormatShape(tensor.Shape)}");
        var value = new float[1];
        tensor.Read(value, this);
        return value[0];
    }

    /// <summary>The file to name in a message about the checkpoint as a whole: the one file, or what the user named.</summary>
    string SourceDescription => _files.Length == 1 ? _files[0].Path : SourcePath;

    CanonicalTensor Lookup(string name)
    {
        if (_tensors.TryGetValue(name, out var tensor)) return tensor;
        string source = SourceDescription;
        string alias = Format == CheckpointFormat.HuggingFace ? HuggingFaceNameOf(name) : "";
        throw new CheckpointException($"{source}: missing tensor '{(alias.Length > 0 ? alias : name)}'{(alias.Length > 0 ? $" (canonical '{name}')" : "")}");
    }

    void CheckShape(CanonicalTensor tensor, int[] expected)
    {
        if (!tensor.Shape.AsSpan().SequenceEqual(expected))
            throw new CheckpointException($"{Describe(tensor)}: has shape {FormatShape(tensor.Shape)}, expected {FormatShape(expected)}");
        if (!tensor.IsFloatingPoint)
            throw new CheckpointException($"{Describe(tensor)}: is an integer tensor, expected floating point");
    }

    string Describe(CanonicalTensor tensor) => tensor switch
    {
        CanonicalTensor.Stored s => $"{s.Entry.FilePath}: tensor '{s.Entry.Name}'",
        _ => $"{SourceDescription}: tensor '{tensor.Description}'",
    };

    internal SafetensorsFile FileOf(TensorEntry entry) => _files.First(f => f.Path == entry.FilePath);

    static string FormatShape(int[] shape) => "[" + string.Join(", ", shape) + "]";

    bool _disposed;

    /// <summary>Stops any background verification and closes the files. Calling it again does nothing.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        StopVerification();
        foreach (var file in _files) file.Dispose();
        _verificationCancel.Dispose();
    }

    /// <summary>How a canonical tensor is made from stored ones.</summary>
    abstract record CanonicalTensor(int[] Shape, string Description)
    {
        public abstract bool IsFloatingPoint { get; }
        public abstract void Read(Span<float> destination, Checkpoint checkpoint);

        /// <summary>Stored as is.</summary>
        public sealed record Stored(TensorEntry Entry, string Name) : CanonicalTensor(Entry.Shape, Name)
        {
            public override bool IsFloatingPoint => Entry.IsFloatingPoint;
            public override void Read(Span<float> destination, Checkpoint checkpoint) => checkpoint.FileOf(Entry).ReadSingles(Entry, destination);
        }

        /// <summary>A stored [rows, cols] matrix read as its transpose [cols, rows] (HF projection weights vs OpenAI's right-multiplied matrices).</summary>
        public sealed record Transposed(TensorEntry Entry) : CanonicalTensor(Entry.Shape.Length == 2 ? [Entry.Shape[1], Entry.Shape[0]] : Entry.Shape, Entry.Name + " (transposed)")
        {
            public override bool IsFloatingPoint => Entry.IsFloatingPoint;
            public override void Read(Span<float> destination, Checkpoint checkpoint)
            {
                int rows = Entry.Shape[0], cols = Entry.Shape[1];
                var stored = new float[destination.Length];
                checkpoint.FileOf(Entry).ReadSingles(Entry, stored);
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++)
                        destination[c * rows + r] = stored[r * cols + c];
            }
        }

        /// <summary>Stored tensors stacked along dimension 0 (HF q, k, v → OpenAI in_proj, rows in that order).</summary>
        public sealed record Concatenated(TensorEntry[] Parts, int[] CombinedShape, string Name) : CanonicalTensor(CombinedShape, Name)
        {
            public override bool IsFloatingPoint => Parts.All(p => p.IsFloatingPoint);
            public override void Read(Span<float> destination, Checkpoint checkpoint)
            {
                int offset = 0;
                foreach (var part in Parts)
                {
                    int count = (int)part.ElementCount;
                    checkpoint.FileOf(part).ReadSingles(part, destination.Slice(offset, count));
                    offset += count;
                }
            }
        }
    }
}
