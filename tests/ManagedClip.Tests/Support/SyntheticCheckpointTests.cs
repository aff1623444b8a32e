using System.Security.Cryptography;
using System.Text.Json;

namespace ManagedClip.Tests.Support;

/// <summary>
/// Proves that the C# generator/writer reproduces, bit for bit, what tests/fixtures/make_synthetic.py
/// generated and fed to the PyTorch reference (hashes recorded in the expected JSON files).
/// </summary>
public class SyntheticCheckpointTests
{
    public static IEnumerable<object[]> AllCases => SyntheticCases.Names(includeFullSize: true);

    public static IEnumerable<object[]> SmallCases => SyntheticCases.Names(includeFullSize: false);

    private static string Hex(byte[] hash) => Convert.ToHexString(hash).ToLowerInvariant();

    [Fact]
    public void HashPrimitivesMatchKnownValues()
    {
        Assert.Equal(0xcbf29ce484222325UL, SyntheticCheckpoint.Fnv1a64(""));
        Assert.Equal(0xaf63dc4c8601ec8cUL, SyntheticCheckpoint.Fnv1a64("a")); // published FNV-1a 64 vector
        Assert.Equal(0xe71fa2190541574bUL, SyntheticCheckpoint.Fnv1a64("abc")); // printed by the Python side
        Assert.Equal(0xe220a8397b1dcdafUL, SyntheticCheckpoint.SplitMix64(0)); // first output of splitmix64 seeded 0
    }

    [Fact]
    public void BFloat16RoundsToNearestEven()
    {
        Assert.Equal((ushort)0x3F80, SyntheticCheckpoint.ToBFloat16Bits(1.0f));
        Assert.Equal((ushort)0x3F80, SyntheticCheckpoint.ToBFloat16Bits(BitConverter.UInt32BitsToSingle(0x3F808000))); // tie -> even
        Assert.Equal((ushort)0x3F82, SyntheticCheckpoint.ToBFloat16Bits(BitConverter.UInt32BitsToSingle(0x3F818000))); // tie -> even (up)
        Assert.Equal((ushort)0x3F81, SyntheticCheckpoint.ToBFloat16Bits(BitConverter.UInt32BitsToSingle(0x3F808001)));
    }

    [Fact]
    public void CasesJsonDescribesSevenCasesConsistently()
    {
        var cases = SyntheticCases.LoadAll();
        Assert.Equal(7, cases.Count);
        foreach (var c in cases)
        {
            var exp = SyntheticCases.LoadExpected(c.Name);
            Assert.Equal(c.Name, exp.Name);
            Assert.Equal(c.NumImages, exp.ImageFeatures.Length);
            Assert.Equal(c.Texts.Count, exp.TextFeatures.Length);
            Assert.Equal(c.Texts.Count, exp.Ids.Length);
            Assert.All(exp.ImageFeatures, r => Assert.Equal(c.EmbedDim, r.Length));
            Assert.All(exp.TextFeatures, r => Assert.Equal(c.EmbedDim, r.Length));
            foreach (var ids in exp.Ids)
            {
                Assert.Equal(c.ContextLength, ids.Length);
                Assert.Equal(49406, ids[0]);
                Assert.Equal(49407, ids.Max());
            }

            Assert.Equal(exp.Probes.TensorCount, SyntheticCheckpoint.Tensors(c).Count);
            if (c.Layout == "hf")
            {
                var cfg = c.HfConfig!.Value;
                Assert.Equal(c.TransformerHeads, cfg.GetProperty("text_config").GetProperty("num_attention_heads").GetInt32());
                Assert.Equal(c.VisionHeads, cfg.GetProperty("vision_config").GetProperty("num_attention_heads").GetInt32());
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void GeneratedTensorsMatchPython(string name)
    {
        var exp = SyntheticCases.LoadExpected(name);
        Assert.NotEmpty(exp.Probes.Tensors);
        foreach (var p in exp.Probes.Tensors)
        {
            var (scale, offset, rule) = SyntheticCheckpoint.InitRule(p.Name, p.Shape);
            Assert.Equal(p.Rule, rule);
            Assert.Equal(BitConverter.SingleToUInt32Bits(p.Scale), BitConverter.SingleToUInt32Bits(scale));
            Assert.Equal(BitConverter.SingleToUInt32Bits(p.Offset), BitConverter.SingleToUInt32Bits(offset));

            float[] v = SyntheticCheckpoint.Generate(p.Name, p.Shape);
            for (int i = 0; i < p.FirstValues.Length; i++)
            {
                Assert.Equal(BitConverter.SingleToUInt32Bits(p.FirstValues[i]), BitConverter.SingleToUInt32Bits(v[i]));
            }

            Assert.Equal(p.Sha256F32, Hex(SHA256.HashData(SyntheticCheckpoint.Encode(v, "F32"))));
            Assert.Equal(p.Sha256F16, Hex(SHA256.HashData(SyntheticCheckpoint.Encode(v, "F16"))));
            Assert.Equal(p.Sha256BF16, Hex(SHA256.HashData(SyntheticCheckpoint.Encode(v, "BF16"))));
        }
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void GeneratedImagesMatchPython(string name)
    {
        var spec = SyntheticCases.Load(name);
        var exp = SyntheticCases.LoadExpected(name);
        float[] images = SyntheticCheckpoint.GenerateImages(spec);
        Assert.Equal((long)spec.NumImages * 3 * spec.ImageResolution * spec.ImageResolution, images.LongLength);
        Assert.Equal(exp.Probes.ImagesSha256F32, Hex(SHA256.HashData(SyntheticCheckpoint.Encode(images, "F32"))));
        Assert.All(images, x => Assert.InRange(x, -2f, 2f));
    }

    [Theory]
    [MemberData(nameof(SmallCases))]
    public void WrittenCheckpointIsByteIdenticalToPython(string name)
    {
        var spec = SyntheticCases.Load(name);
        var exp = SyntheticCases.LoadExpected(name);
        string dir = Path.Combine(Path.GetTempPath(), "managedclip-synth-" + Guid.NewGuid().ToString("N"));
        try
        {
            string file = SyntheticCheckpoint.Write(dir, spec);
            Assert.Equal(exp.Probes.FileSize, new FileInfo(file).Length);
            using (var fs = File.OpenRead(file))
            {
                Assert.Equal(exp.Probes.FileSha256, Hex(SHA256.HashData(fs)));
            }

            string config = Path.Combine(dir, "config.json");
            Assert.Equal(spec.Layout == "hf", File.Exists(config));
            if (spec.Layout == "hf")
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(config));
                Assert.Equal(spec.EmbedDim, doc.RootElement.GetProperty("projection_dim").GetInt32());
                Assert.Equal(spec.TextAct, doc.RootElement.GetProperty("text_config").GetProperty("hidden_act").GetString());
            }
        }
        finally
        {
            if (System.IO.Directory.Exists(dir))
            {
                System.IO.Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>The full-size checkpoints (605 MB / 408 MB) are hashed while streaming, never written to disk.</summary>
    [Theory]
    [InlineData("vit-b32-openai-f32")]
    [InlineData("rn50-openai-f32")]
    public void FullSizeCheckpointStreamHashesLikePython(string name)
    {
        var spec = SyntheticCases.Load(name);
        var exp = SyntheticCases.LoadExpected(name);
        using var sink = new HashingStream();
        SyntheticCheckpoint.WriteSafetensors(sink, spec);
        Assert.Equal(exp.Probes.FileSize, sink.Length);
        Assert.Equal(exp.Probes.FileSha256, Hex(sink.Hash()));
    }

    [Fact]
    public void Rn50Float64FeaturesAreCloseToFloat32Reference()
    {
        var exp = SyntheticCases.LoadExpected("rn50-openai-f32");
        Assert.NotNull(exp.ImageFeaturesF64);
        var f64 = exp.ImageFeaturesF64!.Select(r => r.Select(x => (float)x).ToArray()).ToArray();
        // The recorded value uses the whole-matrix norm; the tests' metric (TestData.RelativeError) takes the worst row.
        double rel = TestData.RelativeError(exp.ImageFeatures, f64);
        Assert.InRange(rel, 1e-6, 1e-3);
        Assert.InRange(exp.ImageF32VsF64RelativeError!.Value, 1e-6, 1e-3);
    }

    private sealed class HashingStream : Stream
    {
        private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long length;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => length;

        public override long Position
        {
            get => length;
            set => throw new NotSupportedException();
        }

        public byte[] Hash() => hash.GetHashAndReset();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.AppendData(buffer);
            length += buffer.Length;
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                hash.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
