using System.Text.Json;
using System.Text.RegularExpressions;
using ManagedClip.Kernels;

namespace ManagedClip.Checkpoints;

public sealed partial class Checkpoint
{
    // ---- OpenAI / open_clip: hyper-parameters from tensor shapes alone, as <c>clip/model.py build_model</c> does ----

    ClipConfig InferOpenAIConfig()
    {
        int embedDim = DimensionsOf("text_projection", 2, "a 2-D [width, embed] matrix")[1];
        int textWidth = DimensionsOf("ln_final.weight", 1, "[width]")[0];
        int[] tokenEmbedding = DimensionsOf("token_embedding.weight", 2, "[vocab, width]");
        var text = new TextConfig(
            Width: textWidth,
            Layers: CountLayers(TextLayer()),
            Heads: HeadsOf(textWidth, "ln_final.weight"),
            MlpWidth: 4 * textWidth,
            ContextLength: DimensionsOf("positional_embedding", 2, "[context, width]")[0],
            VocabSize: tokenEmbedding[0],
            Activation: Activation.QuickGelu,
            LayerNormEpsilon: 1e-5f,
            Pooling: TextPooling.ArgMax,
            EndOfTextId: tokenEmbedding[0] - 1);

        VisionConfig vision;
        // build_model tests visual.proj; a ViT missing only that tensor should be told so, hence the class embedding too.
        if (Contains("visual.proj") || Contains("visual.class_embedding"))
        {
            var (width, patch) = PatchEmbedding();
            int grid = GridOf("visual.positional_embedding");
            vision = new VisionTransformerConfig(width, CountLayers(VisionLayer()), HeadsOf(width, "visual.conv1.weight"),
                VisionTransformerConfig.MlpRatio * width, patch, patch * grid, Activation.QuickGelu, VisionTransformerConfig.DefaultLayerNormEpsilon);
        }
        else if (Contains("visual.attnpool.positional_embedding"))
        {
            int[] blocks = Enumerable.Range(1, 4).Select(stage => CountLayers(ResNetBlock(stage))).ToArray();
            int width = DimensionsOf("visual.layer1.0.conv1.weight", 4, "[width, width, 1, 1]")[0];
            int grid = GridOf("visual.attnpool.positional_embedding");
            int poolWidth = ModifiedResNetConfig.Reduction * width;
            vision = new ModifiedResNetConfig(width, blocks, HeadsOf(poolWidth, "visual.attnpool.positional_embedding"), ModifiedResNetConfig.Reduction * grid);
        }
        else
        {
            throw new CheckpointException($"{SourcePath}: image tower not recognised: neither 'visual.proj' (ViT) nor 'visual.attnpool.positional_embedding' (ModifiedResNet) is present");
        }
        return new ClipConfig(embedDim, vision, text);
    }

    /// <summary>
    /// A shape that config inference indexes into or divides by, after checking its rank and that no dimension is zero:
    /// a scalar, empty or wrongly ranked tensor is refused here, naming it, before any of its dimensions is used.
    /// </summary>
    int[] DimensionsOf(string name, int rank, string expected)
    {
        int[] shape = ShapeOf(name);
        if (shape.Length != rank || shape.Contains(0)) throw ShapeError(name, expected);
        return shape;
    }

    /// <summary>The ViT's patch embedding conv1 [width, 3, patch, patch]: the tower's width and patch size.</summary>
    (int Width, int Patch) PatchEmbedding()
    {
        int[] conv1 = DimensionsOf("visual.conv1.weight", 4, "[width, 3, patch, patch]");
        if (conv1[1] != 3 || conv1[2] != conv1[3]) throw ShapeError("visual.conv1.weight", "[width, 3, patch, patch]");
        return (conv1[0], conv1[3]);
    }

    /// <summary>The OpenAI code builds width/64 heads; a width that 64 does not divide cannot have come from it.</summary>
    int HeadsOf(int width, string tensor) =>
        width > 0 && width % 64 == 0 ? width / 64 : throw ShapeError(tensor, $"a width that is a multiple of 64 (heads = width/64), found {width}");

    /// <summary>Grid side from a positional embedding of g²+1 rows (class or mean token first).</summary>
    int GridOf(string name)
    {
        int rows = DimensionsOf(name, 2, "[g²+1, width]")[0];
        int grid = (int)Math.Round(Math.Sqrt(rows - 1));
        if (grid < 1 || grid * grid + 1 != rows) throw ShapeError(name, $"g²+1 rows for a square grid, found {rows}");
        return grid;
    }

    static Regex TextLayer() => TextLayerPattern();
    static Regex VisionLayer() => VisionLayerPattern();
    static Regex ResNetBlock(int stage) => new($@"^visual\.layer{stage}\.(\d+)\.");

    [GeneratedRegex(@"^transformer\.resblocks\.(\d+)\.")] private static partial Regex TextLayerPattern();
    [GeneratedRegex(@"^visual\.transformer\.resblocks\.(\d+)\.")] private static partial Regex VisionLayerPattern();

    /// <summary>Number of distinct indices i in names matching the pattern; they must run 0..n−1.</summary>
    int CountLayers(Regex pattern)
    {
        var indices = new SortedSet<int>();
        foreach (var name in _tensors.Keys)
        {
            var match = pattern.Match(name);
            if (!match.Success) continue;
            // An index past the tensors a header can hold cannot be contiguous; int.Parse would overflow on the absurd ones.
            if (!int.TryParse(match.Groups[1].ValueSpan, System.Globalization.NumberStyles.None, null, out int index) || index >= _tensors.Count)
                throw new CheckpointException($"{Describe(_tensors[name])}: layer index {match.Groups[1].Value} is out of range for a checkpoint of {_tensors.Count} tensors");
            indices.Add(index);
        }
        if (indices.Count > 0 && indices.Max != indices.Count - 1)
            throw new CheckpointException($"{SourceDescription}: layer indices are not contiguous: found {string.Join(", ", indices)} ({pattern})");
        return indices.Count;
    }

    CheckpointException ShapeError(string name, string expected) =>
        new($"{Describe(Lookup(name))}: has shape {FormatShape(ShapeOf(name))}, expected {expected}");

    // ---- Hugging Face CLIPModel (transformers modeling_clip.py, configuration_clip.py) -------------------------------------------------

    /// <summary>Prefix renames from HF names to canonical ones; layer-local renames below. Order matters only for readability.</summary>
    static readonly (string HuggingFace, string Canonical)[] PrefixRenames =
    [
        ("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
        ("text_model.embeddings.position_embedding.weight", "positional_embedding"),
        ("text_model.final_layer_norm.", "ln_final."),
        ("text_model.encoder.layers.", "transformer.resblocks."),
        ("vision_model.embeddings.class_embedding", "visual.class_embedding"),
        ("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"),
        ("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
        ("vision_model.pre_layrnorm.", "visual.ln_pre."),
        ("vision_model.post_layernorm.", "visual.ln_post."),
        ("vision_model.encoder.layers.", "visual.transformer.resblocks."),
        ("logit_scale", "logit_scale"),
    ];

    static readonly (string HuggingFace, string Canonical)[] LayerRenames =
    [
        ("self_attn.out_proj.", "attn.out_proj."),
        ("layer_norm1.", "ln_1."),
        ("layer_norm2.", "ln_2."),
        ("mlp.fc1.", "mlp.c_fc."),
        ("mlp.fc2.", "mlp.c_proj."),
    ];

    static readonly (string HuggingFace, string Canonical)[] TransposedProjections =
    [
        ("text_projection.weight", "text_projection"),
        ("visual_projection.weight", "visual.proj"),
    ];

    static Dictionary<string, CanonicalTensor> MapHuggingFace(Dictionary<string, TensorEntry> entries, HuggingFaceConfig config)
    {
        var map = new Dictionary<string, CanonicalTensor>(StringComparer.Ordinal);
        var qkv = new Dictionary<string, TensorEntry?[]>(StringComparer.Ordinal);
        foreach (var (name, entry) in entries)
        {
            if (!entry.IsFloatingPoint) continue; // position_ids buffers
            var projection = TransposedProjections.FirstOrDefault(p => p.HuggingFace == name);
            if (projection.Canonical is not null)
            {
                if (entry.Shape.Length != 2)
                    throw new CheckpointException($"{entry.FilePath}: tensor '{name}' has shape {FormatShape(entry.Shape)}, expected a 2-D [embed, width] matrix");
                map[projection.Canonical] = new CanonicalTensor.Transposed(entry);
                continue;
            }
            var prefix = PrefixRenames.FirstOrDefault(p => name.StartsWith(p.HuggingFace, StringComparison.Ordinal));
            if (prefix.Canonical is null) continue; // not part of CLIPModel's inference graph
            string canonical = prefix.Canonical + name[prefix.HuggingFace.Length..];
            if (prefix.Canonical.EndsWith("resblocks.", StringComparison.Ordinal))
            {
                var match = Regex.Match(canonical, @"^(.*resblocks\.\d+\.)self_attn\.([qkv])_proj\.(weight|bias)$");
                if (match.Success)
                {
                    // HF splits nn.MultiheadAttention's in_proj into q, k, v (rows 0..d−1, d..2d−1, 2d..3d−1).
                    string key = $"{match.Groups[1].Value}attn.in_proj_{match.Groups[3].Value}";
                    if (!qkv.TryGetValue(key, out var parts)) qkv[key] = parts = new TensorEntry?[3];
                    parts["qkv".IndexOf(match.Groups[2].Value[0])] = entry;
                    continue;
                }
                var layer = Regex.Match(canonical, @"^(.*resblocks\.\d+\.)(.*)$");
                var rename = LayerRenames.FirstOrDefault(r => layer.Groups[2].Value.StartsWith(r.HuggingFace, StringComparison.Ordinal));
                if (rename.Canonical is null) continue;
                canonical = layer.Groups[1].Value + rename.Canonical + layer.Groups[2].Value[rename.HuggingFace.Length..];
            }
            map[canonical] = new CanonicalTensor.Stored(entry, name);
        }
        foreach (var (canonical, parts) in qkv)
        {
            if (parts.Any(p => p is null)) continue; // reported as missing when the model asks for it
            var shape = parts[0]!.Shape;
            if (parts.Any(p => !p!.Shape.AsSpan().SequenceEqual(shape)))
                throw new CheckpointException($"{parts[0]!.FilePath}: q/k/v projections '{parts[0]!.Name}', '{parts[1]!.Name}', '{parts[2]!.Name}' have different shapes {string.Join(", ", parts.Select(p => FormatShape(p!.Shape)))}");
            int[] combined = [.. shape];
            combined[0] *= 3;
            map[canonical] = new CanonicalTensor.Concatenated(parts!, combined, canonical);
        }
        return map;
    }

    /// <summary>The HF name a canonical tensor comes from, for error messages.</summary>
    static string HuggingFaceNameOf(string canonical)
    {
        var projection = TransposedProjections.FirstOrDefault(p => p.Canonical == canonical);
        if (projection.HuggingFace is not null) return projection.HuggingFace;
        var prefix = PrefixRenames.OrderByDescending(p => p.Canonical.Length).FirstOrDefault(p => canonical.StartsWith(p.Canonical, StringComparison.Ordinal)
            && !(p.Canonical == "transformer.resblocks." && canonical.StartsWith("visual.", StringComparison.Ordinal)));
        if (prefix.HuggingFace is null) return "";
        string rest = canonical[prefix.Canonical.Length..];
        if (prefix.Canonical.EndsWith("resblocks.", StringComparison.Ordinal))
        {
            var layer = Regex.Match(rest, @"^(\d+\.)(.*)$");
            string local = layer.Groups[2].Value;
            if (local.StartsWith("attn.in_proj_", StringComparison.Ordinal))
                return $"{prefix.HuggingFace}{layer.Groups[1].Value}self_attn.q_proj.{local["attn.in_proj_".Length..]} (with k_proj, v_proj)";
            var rename = LayerRenames.FirstOrDefault(r => local.StartsWith(r.Canonical, StringComparison.Ordinal));
            if (rename.HuggingFace is not null) local = rename.HuggingFace + local[rename.Canonical.Length..];
            return prefix.HuggingFace + layer.Groups[1].Value + local;
        }
        return prefix.HuggingFace + rest;
    }

    ClipConfig InferHuggingFaceConfig(HuggingFaceConfig hf)
    {
        var t = hf.Text;
        var v = hf.Vision;
        var text = new TextConfig(t.HiddenSize, t.Layers, t.Heads, t.IntermediateSize, t.MaxPositions, t.VocabSize,
            t.Activation, t.LayerNormEpsilon,
            // HF's legacy configs carry eos_token_id 2: it then pools at argmax, which equals the first 49407 (transformers CLIPTextTransformer.forward).
            t.EosTokenId == 2 ? TextPooling.ArgMax : TextPooling.FirstEndOfText,
            t.EosTokenId == 2 ? t.VocabSize - 1 : t.EosTokenId);
        var vision = new VisionTransformerConfig(v.HiddenSize, v.Layers, v.Heads, v.IntermediateSize, v.PatchSize, v.ImageSize, v.Activation, v.LayerNormEpsilon);
        var config = new ClipConfig(hf.ProjectionDim, vision, text);

        // config.json's own values first: every size is used to index, divide or allocate.
        void Positive(string key, int value)
        {
            if (value <= 0) throw new CheckpointException($"{hf.Path}: {key} is {value}, expected a positive integer");
        }
        foreach (var (section, tower) in new[] { ("text_config", t), ("vision_config", v) })
        {
            Positive($"{section}.hidden_size", tower.HiddenSize);
            Positive($"{section}.intermediate_size", tower.IntermediateSize);
            Positive($"{section}.num_attention_heads", tower.Heads);
            if (tower.HiddenSize % tower.Heads != 0)
                throw new CheckpointException($"{hf.Path}: {section}.num_attention_heads {tower.Heads} does not divide hidden_size {tower.HiddenSize}");
        }
        Positive("projection_dim", hf.ProjectionDim);
        Positive("vision_config.patch_size", v.PatchSize);
        Positive("vision_config.image_size", v.ImageSize);
        if (text.Pooling == TextPooling.FirstEndOfText && (uint)t.EosTokenId >= (uint)t.VocabSize)
            throw new CheckpointException($"{hf.Path}: text_config.eos_token_id {t.EosTokenId} is outside the vocabulary of {t.VocabSize} tokens");

        // config.json and the tensors must agree; a disagreement names both.
        void Agree(string what, int fromConfig, string tensor, int fromShape)
        {
            if (fromConfig != fromShape)
                throw new CheckpointException($"{hf.Path}: {what} is {fromConfig}, but tensor '{HuggingFaceNameOf(tensor)}' has shape {FormatShape(ShapeOf(tensor))} (implies {fromShape})");
        }
        int[] tokenEmbedding = DimensionsOf("token_embedding.weight", 2, "[vocab, width]");
        var (patchWidth, patch) = PatchEmbedding();
        Agree("text_config.hidden_size", t.HiddenSize, "token_embedding.weight", tokenEmbedding[1]);
        Agree("text_config.vocab_size", t.VocabSize, "token_embedding.weight", tokenEmbedding[0]);
        Agree("text_config.max_position_embeddings", t.MaxPositions, "positional_embedding", DimensionsOf("positional_embedding", 2, "[context, width]")[0]);
        Agree("text_config.num_hidden_layers", t.Layers, "ln_final.weight", CountLayers(TextLayer()));
        Agree("vision_config.hidden_size", v.HiddenSize, "visual.conv1.weight", patchWidth);
        Agree("vision_config.patch_size", v.PatchSize, "visual.conv1.weight", patch);
        Agree("vision_config.image_size / patch_size", v.ImageSize / v.PatchSize, "visual.positional_embedding", GridOf("visual.positional_embedding"));
        Agree("vision_config.num_hidden_layers", v.Layers, "visual.ln_post.weight", CountLayers(VisionLayer()));
        Agree("projection_dim", hf.ProjectionDim, "text_projection", DimensionsOf("text_projection", 2, "[width, embed]")[1]);
        return config;
    }

    /// <summary>The fields of an HF <c>config.json</c> a loader needs, with CLIPTextConfig/CLIPVisionConfig defaults.</summary>
    internal sealed record HuggingFaceConfig(string Path, int ProjectionDim, HuggingFaceTower Text, HuggingFaceTower Vision)
    {
        /// <summary><c>CLIPConfig().projection_dim</c>.</summary>
        const int DefaultProjectionDim = 512;

        /// <summary><c>CLIPTextConfig()</c>'s defaults (a text tower has no image size or patch).</summary>
        static readonly HuggingFaceTower TextDefaults = new(HiddenSize: 512, IntermediateSize: 2048, Heads: 8, Layers: 12, MaxPositions: 77,
            VocabSize: 49408, ImageSize: 0, PatchSize: 0, Activation: Activation.QuickGelu, LayerNormEpsilon: 1e-5f, EosTokenId: 49407);

        /// <summary><c>CLIPVisionConfig()</c>'s defaults (a vision tower has no positions table, vocabulary or end-of-text id).</summary>
        static readonly HuggingFaceTower VisionDefaults = new(HiddenSize: 768, IntermediateSize: 3072, Heads: 12, Layers: 12, MaxPositions: 0,
            VocabSize: 0, ImageSize: 224, PatchSize: 32, Activation: Activation.QuickGelu, LayerNormEpsilon: 1e-5f, EosTokenId: 0);

        public static HuggingFaceConfig Read(string path)
        {
            try
            {
                using var document = JsonDocument.Parse(File.ReadAllBytes(path));
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{path}: config.json is not a JSON object");
                int projection = Int(root, "projection_dim", path, DefaultProjectionDim);
                var text = HuggingFaceTower.Read(path, root, "text_config", TextDefaults);
                var vision = HuggingFaceTower.Read(path, root, "vision_config", VisionDefaults);
                return new HuggingFaceConfig(path, projection, text, vision);
            }
            catch (JsonException e) { throw new CheckpointException($"{path}: config.json is not valid JSON ({e.Message})", e); }
            catch (IOException e) { throw new CheckpointException($"{path}: cannot read ({e.Message})", e); }
        }

        internal static int Int(JsonElement element, string name, string path, int fallback)
        {
            if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int result)) return result;
            throw new CheckpointException($"{path}: '{name}' must be an integer, found {value.GetRawText()}");
        }
    }

    internal sealed record HuggingFaceTower(int HiddenSize, int IntermediateSize, int Heads, int Layers, int MaxPositions, int VocabSize,
        int ImageSize, int PatchSize, Activation Activation, float LayerNormEpsilon, int EosTokenId)
    {
        public static HuggingFaceTower Read(string path, JsonElement root, string section, HuggingFaceTower defaults)
        {
            var result = defaults;
            // Older files carry *_config_dict; when non-null its values override *_config (CLIPConfig.__init__).
            foreach (var name in new[] { section, section + "_dict" })
            {
                if (!root.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) continue;
                if (e.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{path}: '{name}' is not an object");
                int I(string key, int fallback) => HuggingFaceConfig.Int(e, key, path, fallback);
                // A key that is present must hold what it names: a wrong type is an error, never a silent default.
                float eps = result.LayerNormEpsilon;
                if (e.TryGetProperty("layer_norm_eps", out var epsValue))
                {
                    eps = epsValue.ValueKind == JsonValueKind.Number && epsValue.TryGetDouble(out double parsed) ? (float)parsed : float.NaN;
                    if (!(eps > 0) || !float.IsFinite(eps))
                        throw new CheckpointException($"{path}: {name}.layer_norm_eps must be a positive number, found {epsValue.GetRawText()}");
                }
                var activation = result.Activation;
                if (e.TryGetProperty("hidden_act", out var act))
                {
                    activation = act.ValueKind != JsonValueKind.String
                        ? throw new CheckpointException($"{path}: {name}.hidden_act must be a string (quick_gelu, gelu), found {act.GetRawText()}")
                        : act.GetString() switch
                        {
                            "quick_gelu" => Activation.QuickGelu,
                            "gelu" => Activation.Gelu,
                            var other => throw new CheckpointException($"{path}: {name}.hidden_act '{other}' is not supported (quick_gelu, gelu)"),
                        };
                }
                result = new HuggingFaceTower(I("hidden_size", result.HiddenSize), I("intermediate_size", result.IntermediateSize),
                    I("num_attention_heads", result.Heads), I("num_hidden_layers", result.Layers), I("max_position_embeddings", result.MaxPositions),
                    I("vocab_size", result.VocabSize), I("image_size", result.ImageSize), I("patch_size", result.PatchSize), activation, eps,
                    I("eos_token_id", result.EosTokenId));
            }
            return result;
        }
    }
}
