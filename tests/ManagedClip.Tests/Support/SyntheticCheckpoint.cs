using System.Buffers.Binary;
using System.Text.Json;

namespace ManagedClip.Tests.Support;

/// <summary>One entry of a synthetic checkpoint's tensor list.</summary>
/// <param name="Kind">"float" = generated and stored in the case dtype; "i64_zero" = int64 zeros
/// (BatchNorm num_batches_tracked); "i64_arange" = int64 0..n-1 (HF position_ids).</param>
public sealed record SyntheticTensor(string Name, int[] Shape, string Kind);

/// <summary>
/// C# twin of tests/fixtures/synthetic_weights.py: regenerates, bit for bit, the synthetic checkpoints
/// whose reference outputs are committed in tests/fixtures/synthetic/*.expected.json (see
/// tests/fixtures/README.md for the formula and the scale/offset table).
/// </summary>
public static class SyntheticCheckpoint
{
    private const ulong FnvOffset = 0xcbf29ce484222325UL;
    private const ulong FnvPrime = 0x100000001b3UL;
    private const float TwoPowMinus24 = 5.9604644775390625E-08f; // 2^-24, exact

    public static ulong Fnv1a64(string name)
    {
        ulong h = FnvOffset;
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(name))
        {
            h ^= b;
            h = unchecked(h * FnvPrime);
        }

        return h;
    }

    public static ulong SplitMix64(ulong z)
    {
        unchecked
        {
            z += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>float32(sqrt(12 * gain2 / fanIn)) computed in double: uniform of that width has variance gain2/fanIn.</summary>
    public static float UniformScale(long fanIn, double gain2) => (float)Math.Sqrt(12.0 * gain2 / fanIn);

    private static double ConvGain2(string name) =>
        name.StartsWith("visual.layer", StringComparison.Ordinal)
        && (name.EndsWith(".conv3.weight", StringComparison.Ordinal) || name.EndsWith(".downsample.0.weight", StringComparison.Ordinal))
            ? 0.5
            : 2.0;

    /// <summary>The scale/offset rule (first match wins); a pure function of name and shape.</summary>
    public static (float Scale, float Offset, string Rule) InitRule(string name, int[] shape)
    {
        if (name == "logit_scale")
        {
            return (1.0f, 4.0f, "logit_scale");
        }

        if (name.EndsWith("running_var", StringComparison.Ordinal))
        {
            return (0.4f, 1.0f, "bn_running_var");
        }

        if (name.EndsWith("running_mean", StringComparison.Ordinal))
        {
            return (0.2f, 0.0f, "bn_running_mean");
        }

        if (name.EndsWith("bias", StringComparison.Ordinal))
        {
            return (0.2f, 0.0f, "bias");
        }

        if (shape.Length == 1 && name.EndsWith(".weight", StringComparison.Ordinal))
        {
            return (0.2f, 1.0f, "norm_weight");
        }

        if (shape.Length == 4)
        {
            return (UniformScale((long)shape[1] * shape[2] * shape[3], ConvGain2(name)), 0.0f, "conv");
        }

        if (name.Contains("embedding", StringComparison.Ordinal))
        {
            return (1.0f, 0.0f, "embedding");
        }

        if (name is "visual.proj" or "text_projection")
        {
            return (UniformScale(shape[0], 1.0), 0.0f, "projection_in_out");
        }

        if (shape.Length == 2)
        {
            return (UniformScale(shape[1], 1.0), 0.0f, "linear");
        }

        throw new ArgumentException($"no init rule for {name} [{string.Join(",", shape)}]", nameof(name));
    }

    /// <summary>value_i = (r_i * scale) + offset in float32, r_i = float32(splitmix64(seed + i) >> 40) * 2^-24 - 0.5.</summary>
    public static float[] GenerateRaw(string name, long count, float scale, float offset)
    {
        ulong seed = Fnv1a64(name);
        var result = new float[count];
        for (long i = 0; i < count; i++)
        {
            ulong u = SplitMix64(unchecked(seed + (ulong)i)) >> 40;
            float r = ((float)u * TwoPowMinus24) - 0.5f;
            float scaled = r * scale;
            result[i] = scaled + offset;
        }

        return result;
    }

    public static float[] Generate(string name, int[] shape)
    {
        var (scale, offset, _) = InitRule(name, shape);
        return GenerateRaw(name, SafetensorsEntry.ElementCount(shape), scale, offset);
    }

    /// <summary>Input images, [NumImages, 3, R, R] flattened; row b = tensor "input.image.{b}" with scale 4, offset 0.</summary>
    public static float[] GenerateImages(CaseSpec spec)
    {
        int per = 3 * spec.ImageResolution * spec.ImageResolution;
        var all = new float[(long)spec.NumImages * per];
        for (int b = 0; b < spec.NumImages; b++)
        {
            GenerateRaw($"input.image.{b}", per, 4.0f, 0.0f).CopyTo(all, (long)b * per);
        }

        return all;
    }

    // ------------------------------------------------------------------------------------------
    // Tensor lists (same order and contents as synthetic_weights.py; the file order is by name)
    // ------------------------------------------------------------------------------------------

    public static IReadOnlyList<SyntheticTensor> Tensors(CaseSpec spec) =>
        spec.Layout == "openai" ? OpenAiTensors(spec) : HfTensors(spec);

    private static IEnumerable<SyntheticTensor> Block(string p, int d, int mlp)
    {
        yield return new($"{p}.attn.in_proj_weight", [3 * d, d], "float");
        yield return new($"{p}.attn.in_proj_bias", [3 * d], "float");
        yield return new($"{p}.attn.out_proj.weight", [d, d], "float");
        yield return new($"{p}.attn.out_proj.bias", [d], "float");
        yield return new($"{p}.ln_1.weight", [d], "float");
        yield return new($"{p}.ln_1.bias", [d], "float");
        yield return new($"{p}.mlp.c_fc.weight", [mlp, d], "float");
        yield return new($"{p}.mlp.c_fc.bias", [mlp], "float");
        yield return new($"{p}.mlp.c_proj.weight", [d, mlp], "float");
        yield return new($"{p}.mlp.c_proj.bias", [d], "float");
        yield return new($"{p}.ln_2.weight", [d], "float");
        yield return new($"{p}.ln_2.bias", [d], "float");
    }

    private static IEnumerable<SyntheticTensor> Bn(string p, int c)
    {
        yield return new($"{p}.weight", [c], "float");
        yield return new($"{p}.bias", [c], "float");
        yield return new($"{p}.running_mean", [c], "float");
        yield return new($"{p}.running_var", [c], "float");
        yield return new($"{p}.num_batches_tracked", [], "i64_zero");
    }

    private static List<SyntheticTensor> OpenAiTensors(CaseSpec s)
    {
        int t = s.TransformerWidth, e = s.EmbedDim;
        var o = new List<SyntheticTensor>
        {
            new("token_embedding.weight", [s.VocabSize, t], "float"),
            new("positional_embedding", [s.ContextLength, t], "float"),
        };
        for (int i = 0; i < s.TransformerLayers; i++)
        {
            o.AddRange(Block($"transformer.resblocks.{i}", t, s.TextMlpWidth));
        }

        o.Add(new("ln_final.weight", [t], "float"));
        o.Add(new("ln_final.bias", [t], "float"));
        o.Add(new("text_projection", [t, e], "float"));
        o.Add(new("logit_scale", [], "float"));
        int w = s.VisionWidth, r = s.ImageResolution;
        if (s.Arch == "vit")
        {
            int p = s.VisionPatchSize, g = r / p;
            o.Add(new("visual.class_embedding", [w], "float"));
            o.Add(new("visual.conv1.weight", [w, 3, p, p], "float"));
            o.Add(new("visual.positional_embedding", [g * g + 1, w], "float"));
            o.Add(new("visual.ln_pre.weight", [w], "float"));
            o.Add(new("visual.ln_pre.bias", [w], "float"));
            for (int i = 0; i < s.VisionLayers; i++)
            {
                o.AddRange(Block($"visual.transformer.resblocks.{i}", w, s.VisionMlpWidth));
            }

            o.Add(new("visual.ln_post.weight", [w], "float"));
            o.Add(new("visual.ln_post.bias", [w], "float"));
            o.Add(new("visual.proj", [w, e], "float"));
        }
        else
        {
            int h = w / 2;
            o.Add(new("visual.conv1.weight", [h, 3, 3, 3], "float"));
            o.AddRange(Bn("visual.bn1", h));
            o.Add(new("visual.conv2.weight", [h, h, 3, 3], "float"));
            o.AddRange(Bn("visual.bn2", h));
            o.Add(new("visual.conv3.weight", [w, h, 3, 3], "float"));
            o.AddRange(Bn("visual.bn3", w));
            int inplanes = w;
            for (int k = 0; k < s.VisionStageBlocks.Length; k++)
            {
                int planes = w << k;
                for (int b = 0; b < s.VisionStageBlocks[k]; b++)
                {
                    string p = $"visual.layer{k + 1}.{b}";
                    o.Add(new($"{p}.conv1.weight", [planes, inplanes, 1, 1], "float"));
                    o.AddRange(Bn($"{p}.bn1", planes));
                    o.Add(new($"{p}.conv2.weight", [planes, planes, 3, 3], "float"));
                    o.AddRange(Bn($"{p}.bn2", planes));
                    o.Add(new($"{p}.conv3.weight", [4 * planes, planes, 1, 1], "float"));
                    o.AddRange(Bn($"{p}.bn3", 4 * planes));
                    if (b == 0)
                    {
                        o.Add(new($"{p}.downsample.0.weight", [4 * planes, inplanes, 1, 1], "float"));
                        o.AddRange(Bn($"{p}.downsample.1", 4 * planes));
                    }

                    inplanes = 4 * planes;
                }
            }

            int d = 32 * w, gg = r / 32;
            o.Add(new("visual.attnpool.positional_embedding", [gg * gg + 1, d], "float"));
            foreach (var q in new[] { "q_proj", "k_proj", "v_proj" })
            {
                o.Add(new($"visual.attnpool.{q}.weight", [d, d], "float"));
                o.Add(new($"visual.attnpool.{q}.bias", [d], "float"));
            }

            o.Add(new("visual.attnpool.c_proj.weight", [e, d], "float"));
            o.Add(new("visual.attnpool.c_proj.bias", [e], "float"));
        }

        return o;
    }

    private static IEnumerable<SyntheticTensor> HfLayer(string p, int d, int mlp)
    {
        foreach (var q in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
        {
            yield return new($"{p}.self_attn.{q}.weight", [d, d], "float");
            yield return new($"{p}.self_attn.{q}.bias", [d], "float");
        }

        yield return new($"{p}.layer_norm1.weight", [d], "float");
        yield return new($"{p}.layer_norm1.bias", [d], "float");
        yield return new($"{p}.mlp.fc1.weight", [mlp, d], "float");
        yield return new($"{p}.mlp.fc1.bias", [mlp], "float");
        yield return new($"{p}.mlp.fc2.weight", [d, mlp], "float");
        yield return new($"{p}.mlp.fc2.bias", [d], "float");
        yield return new($"{p}.layer_norm2.weight", [d], "float");
        yield return new($"{p}.layer_norm2.bias", [d], "float");
    }

    private static List<SyntheticTensor> HfTensors(CaseSpec s)
    {
        int t = s.TransformerWidth, e = s.EmbedDim, w = s.VisionWidth, p = s.VisionPatchSize;
        int n = (s.ImageResolution / p) * (s.ImageResolution / p) + 1, c = s.ContextLength;
        var o = new List<SyntheticTensor>
        {
            new("text_model.embeddings.token_embedding.weight", [s.VocabSize, t], "float"),
            new("text_model.embeddings.position_embedding.weight", [c, t], "float"),
        };
        if (s.HfPositionIds)
        {
            o.Add(new("text_model.embeddings.position_ids", [1, c], "i64_arange"));
        }

        for (int i = 0; i < s.TransformerLayers; i++)
        {
            o.AddRange(HfLayer($"text_model.encoder.layers.{i}", t, s.TextMlpWidth));
        }

        o.Add(new("text_model.final_layer_norm.weight", [t], "float"));
        o.Add(new("text_model.final_layer_norm.bias", [t], "float"));
        o.Add(new("text_projection.weight", [e, t], "float"));
        o.Add(new("vision_model.embeddings.class_embedding", [w], "float"));
        o.Add(new("vision_model.embeddings.patch_embedding.weight", [w, 3, p, p], "float"));
        o.Add(new("vision_model.embeddings.position_embedding.weight", [n, w], "float"));
        if (s.HfPositionIds)
        {
            o.Add(new("vision_model.embeddings.position_ids", [1, n], "i64_arange"));
        }

        o.Add(new("vision_model.pre_layrnorm.weight", [w], "float"));
        o.Add(new("vision_model.pre_layrnorm.bias", [w], "float"));
        for (int i = 0; i < s.VisionLayers; i++)
        {
            o.AddRange(HfLayer($"vision_model.encoder.layers.{i}", w, s.VisionMlpWidth));
        }

        o.Add(new("vision_model.post_layernorm.weight", [w], "float"));
        o.Add(new("vision_model.post_layernorm.bias", [w], "float"));
        o.Add(new("visual_projection.weight", [e, w], "float"));
        o.Add(new("logit_scale", [], "float"));
        return o;
    }

    // ------------------------------------------------------------------------------------------
    // Encoding and writing
    // ------------------------------------------------------------------------------------------

    /// <summary>Round-to-nearest-even float32 -> bfloat16 bits (same integer trick as the Python side).</summary>
    public static ushort ToBFloat16Bits(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        uint bias = 0x7FFFu + ((u >> 16) & 1u);
        return (ushort)(unchecked(u + bias) >> 16);
    }

    public static byte[] Encode(float[] values, string dtype)
    {
        switch (dtype)
        {
            case "F32":
            {
                var b = new byte[values.LongLength * 4];
                for (long i = 0; i < values.LongLength; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan((int)(i * 4), 4), values[i]);
                }

                return b;
            }

            case "F16":
            {
                var b = new byte[values.LongLength * 2];
                for (long i = 0; i < values.LongLength; i++)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(b.AsSpan((int)(i * 2), 2), (Half)values[i]); // IEEE RNE
                }

                return b;
            }

            case "BF16":
            {
                var b = new byte[values.LongLength * 2];
                for (long i = 0; i < values.LongLength; i++)
                {
                    BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan((int)(i * 2), 2), ToBFloat16Bits(values[i]));
                }

                return b;
            }

            default:
                throw new ArgumentException($"unsupported float dtype {dtype}", nameof(dtype));
        }
    }

    private static byte[] Int64Bytes(long count, bool arange)
    {
        var b = new byte[count * 8];
        if (arange)
        {
            for (long i = 0; i < count; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan((int)(i * 8), 8), i);
            }
        }

        return b;
    }

    public static IEnumerable<SafetensorsEntry> Entries(CaseSpec spec) =>
        Tensors(spec).Select(t => t.Kind switch
        {
            "float" => new SafetensorsEntry(t.Name, spec.DType, t.Shape, () => Encode(Generate(t.Name, t.Shape), spec.DType)),
            "i64_zero" => new SafetensorsEntry(t.Name, "I64", t.Shape, () => Int64Bytes(SafetensorsEntry.ElementCount(t.Shape), false)),
            "i64_arange" => new SafetensorsEntry(t.Name, "I64", t.Shape, () => Int64Bytes(SafetensorsEntry.ElementCount(t.Shape), true)),
            _ => throw new InvalidOperationException(t.Kind),
        });

    /// <summary>Writes only the safetensors bytes of the case (no config.json) to a stream.</summary>
    public static void WriteSafetensors(Stream output, CaseSpec spec) => SafetensorsWriter.Write(output, Entries(spec));

    /// <summary>
    /// Writes the checkpoint like make_synthetic.py. <paramref name="folderOrFile"/> ending in
    /// ".safetensors" (OpenAI layout only) is the file itself; otherwise it is a folder that receives
    /// model.safetensors and, for the HF layout, config.json (no vocab.json/merges.txt: tests pass the
    /// vocabulary separately). Returns the path of the safetensors file.
    /// </summary>
    public static string Write(string folderOrFile, CaseSpec spec)
    {
        string file;
        if (folderOrFile.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            if (spec.Layout == "hf")
            {
                throw new ArgumentException("HF layout needs a folder (config.json + model.safetensors)", nameof(folderOrFile));
            }

            file = folderOrFile;
            string? dir = Path.GetDirectoryName(Path.GetFullPath(file));
            if (dir is not null)
            {
                Directory.CreateDirectory(dir);
            }
        }
        else
        {
            Directory.CreateDirectory(folderOrFile);
            file = Path.Combine(folderOrFile, "model.safetensors");
            if (spec.Layout == "hf")
            {
                if (spec.HfConfig is not { } cfg)
                {
                    throw new InvalidOperationException($"{spec.Name}: HF case without hf_config");
                }

                File.WriteAllText(Path.Combine(folderOrFile, "config.json"),
                    JsonSerializer.Serialize(cfg, new JsonSerializerOptions { WriteIndented = true }));
            }
        }

        SafetensorsWriter.Write(file, Entries(spec));
        return file;
    }
}
