using ManagedClip.Backends;
using ManagedClip.Backends.Cpu;
using ManagedClip.Checkpoints;
using ManagedClip.Imaging;
using ManagedClip.Kernels;
using ManagedClip.Modeling;

namespace ManagedClip.Tests.Backends;

/// <summary>
/// The forward passes run on the operator set and nothing else: every tower, run through a second backend (a recording one that
/// hands the work to the CPU's operators), gives the CPU backend's features bit for bit, and obeys docs/architecture.md's tensor rules:
/// every tensor an operator sees is a weight the backend made at load or one the call rented, and the inputs and outputs cross
/// between host and backend once per call (per sub-batch for the ResNet).
/// </summary>
public class OperatorSeamTests
{
    static Checkpoint Open(string model) => Checkpoint.Open(Path.Combine(TestData.ReferenceModel(model), "model.safetensors"));

    static (float[] Pixels, int Batch) Pixels(string model)
    {
        var (pixels, shape) = NpyFile.Read(Path.Combine(TestData.ReferenceModel(model), "random_input.npy"));
        return (pixels, shape[0]);
    }

    [Theory]
    [InlineData("vit-tiny-a", 1)]
    [InlineData("vit-tiny-a", 2)]
    [InlineData("vit-tiny-a-hf", 2)]
    [InlineData("rn-tiny-a", 1)]
    [InlineData("rn-tiny-a", 2)]
    public void ImageTowerOnASecondBackendGivesTheCpuFeatures(string model, int threads)
    {
        using var checkpoint = Open(model);
        var (pixels, batch) = Pixels(model);
        var recording = new RecordingBackend(new CpuBackend(KernelContext.Create(threads)));
        IImageTower Tower(ComputeBackend backend) => checkpoint.Config.Vision is VisionTransformerConfig
            ? new VisionTransformer(new WeightLoader(checkpoint, backend), checkpoint.Config)
            : new ModifiedResNet(new WeightLoader(checkpoint, backend), checkpoint.Config);
        var cpu = Tower(new CpuBackend(KernelContext.Create(threads)));
        var recorded = Tower(recording);
        var expected = new float[batch * cpu.EmbedDim];
        var features = new float[batch * cpu.EmbedDim];

        cpu.Forward(pixels, batch, expected, threads);
        recorded.Forward(pixels, batch, features, threads);

        Assert.Equal(expected, features);
        Assert.Equal(recording.Parts, recording.Count(nameof(Operators.Upload)));
        Assert.Equal(recording.Parts, recording.Count(nameof(Operators.Download)));
        string[] used = checkpoint.Config.Vision is VisionTransformerConfig
            ? [nameof(Operators.Patchify), nameof(Operators.AssembleTokens), nameof(Operators.LayerNorm), nameof(Operators.Attention),
               nameof(Operators.Linear), nameof(Operators.LinearAddTo), nameof(Operators.GatherRows)]
            : [nameof(Operators.ToChannelsLast), nameof(Operators.Convolution), nameof(Operators.AveragePool), nameof(Operators.AssembleTokens),
               nameof(Operators.GatherRows), nameof(Operators.Linear), nameof(Operators.AttentionPool)];
        foreach (var name in used) Assert.True(recording.Count(name) > 0, $"{model} never called {name}");
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    public void TextTowerOnASecondBackendGivesTheCpuFeatures(int threads, bool fullContext)
    {
        using var checkpoint = Open("vit-tiny-a");
        var text = checkpoint.Config.Text;
        var random = new Random(7);
        // Rows of different lengths, each ending in the end-of-text id (the largest id, as clip.tokenize's), one padded with zeros.
        var ids = new List<int[]>();
        foreach (int length in new[] { 2, 9, 5, 16, 3, 7, 4 })
        {
            var row = new int[length];
            for (int i = 0; i < length - 1; i++) row[i] = random.Next(1, text.EndOfTextId);
            row[^1] = text.EndOfTextId;
            ids.Add(row);
        }
        ids.Add([.. ids[0], 0, 0, 0]);
        var recording = new RecordingBackend(new CpuBackend(KernelContext.Create(threads)));
        var cpu = new TextTransformer(new WeightLoader(checkpoint, new CpuBackend(KernelContext.Create(threads))), checkpoint.Config);
        var recorded = new TextTransformer(new WeightLoader(checkpoint, recording), checkpoint.Config);
        var expected = new float[ids.Count * cpu.EmbedDim];
        var features = new float[ids.Count * cpu.EmbedDim];

        cpu.Forward(ids, expected, threads, fullContext);
        recorded.Forward(ids, features, threads, fullContext);

        Assert.Equal(expected, features);
        Assert.Equal(0, recording.Count(nameof(Operators.Upload)));   // token ids travel with EmbedTokens
        Assert.Equal(recording.Parts, recording.Count(nameof(Operators.EmbedTokens)));
        Assert.Equal(recording.Parts, recording.Count(nameof(Operators.Download)));
        Assert.Equal(recording.Parts * text.Layers, recording.Count(nameof(Operators.Attention)));
        Assert.Equal(threads, recording.Parts);   // 8 texts on 2 threads: two parts, each with its own operators
    }

    [Fact]
    public void ATensorFromOutsideTheCallIsRefused()
    {
        var recording = new RecordingBackend(new CpuBackend(KernelContext.Create(1)));
        var stray = HostStorage.Whole(new float[8]);
        var error = Assert.Throws<InvalidOperationException>(() => recording.Run(1, 1, (_, _, ops) => ops.Download(stray, new float[8])));
        Assert.Contains("Download", error.Message);
    }

    /// <summary>
    /// A second backend: it hands every weight and operator to the CPU backend, counts the operators, and checks that each tensor an
    /// operator is given was made by <see cref="Constant"/> (a weight) or rented by the same call.
    /// </summary>
    sealed class RecordingBackend(CpuBackend cpu) : ComputeBackend
    {
        readonly HashSet<TensorStorage> _constants = [];
        readonly Dictionary<string, int> _calls = [];
        int _parts;

        public int Parts => _parts;

        public int Count(string name) { lock (_calls) return _calls.GetValueOrDefault(name); }

        void Record(string name) { lock (_calls) _calls[name] = _calls.GetValueOrDefault(name) + 1; }

        public override Tensor Constant(float[] values)
        {
            var tensor = cpu.Constant(values);
            lock (_constants) _constants.Add(tensor.Storage);
            return tensor;
        }

        public override LinearWeights Linear(ReadOnlySpan<float> weight, float[]? bias, int inFeatures, int outFeatures) => cpu.Linear(weight, bias, inFeatures, outFeatures);
        public override LinearWeights Projection(ReadOnlySpan<float> weight, int inFeatures, int outFeatures) => cpu.Projection(weight, inFeatures, outFeatures);
        public override ConvolutionWeights Convolution(ReadOnlySpan<float> weight, float[] bias, int inChannels, int outChannels, ConvolutionGeometry geometry) =>
            cpu.Convolution(weight, bias, inChannels, outChannels, geometry);
        public override AttentionPoolWeights AttentionPool(ReadOnlySpan<float> keyWeight, ReadOnlySpan<float> valueWeight, float[] valueBias, int width, int heads) =>
            cpu.AttentionPool(keyWeight, valueWeight, valueBias, width, heads);

        public override void Run(int batch, int threads, Action<int, int, Operators> body) =>
            cpu.Run(batch, threads, (start, count, ops) =>
            {
                Interlocked.Increment(ref _parts);
                using var recording = new RecordingOperators(this, ops);
                body(start, count, recording);
            });

        sealed class RecordingOperators(RecordingBackend backend, Operators cpu) : Operators
        {
            readonly HashSet<TensorStorage> _rented = [];

            void Check(string name, params Tensor[] tensors)
            {
                backend.Record(name);
                foreach (var tensor in tensors)
                    if (tensor.Storage is { } storage && !_rented.Contains(storage) && !backend._constants.Contains(storage))
                        throw new InvalidOperationException($"{name} was given a tensor that is neither a weight nor rented by this call");
            }

            public override Tensor Rent(int length)
            {
                var tensor = cpu.Rent(length);
                _rented.Add(tensor.Storage);
                return tensor;
            }

            public override void Upload(ReadOnlySpan<float> source, Tensor destination) { Check(nameof(Upload), destination); cpu.Upload(source, destination); }
            public override void Download(Tensor source, Span<float> destination) { Check(nameof(Download), source); cpu.Download(source, destination); }

            public override void Linear(LinearWeights weights, Tensor x, int rows, Tensor y, Activation activation = Activation.None)
            { Check(nameof(Linear), x, y); cpu.Linear(weights, x, rows, y, activation); }

            public override void LinearAddTo(LinearWeights weights, Tensor x, int rows, Tensor y)
            { Check(nameof(LinearAddTo), x, y); cpu.LinearAddTo(weights, x, rows, y); }

            public override void LayerNorm(LayerNormWeights weights, Tensor x, Tensor y, int rows)
            { Check(nameof(LayerNorm), weights.Gamma, weights.Beta, x, y); cpu.LayerNorm(weights, x, y, rows); }

            public override void Attention(Tensor qkv, Tensor output, int width, AttentionShape shape)
            { Check(nameof(Attention), qkv, output); cpu.Attention(qkv, output, width, shape); }

            public override void Convolution(ConvolutionWeights weights, Tensor x, ImageGeometry shape, Tensor y, Tensor scratch,
                Activation activation = Activation.None, Tensor residual = default)
            { Check(nameof(Convolution), x, y, scratch, residual); cpu.Convolution(weights, x, shape, y, scratch, activation, residual); }

            public override void AveragePool(Tensor x, ImageGeometry shape, int window, Tensor y)
            { Check(nameof(AveragePool), x, y); cpu.AveragePool(x, shape, window, y); }

            public override void AttentionPool(AttentionPoolWeights weights, Tensor query, Tensor tokens, int batch, Tensor output, Tensor scratch)
            { Check(nameof(AttentionPool), query, tokens, output, scratch); cpu.AttentionPool(weights, query, tokens, batch, output, scratch); }

            public override void ToChannelsLast(Tensor pixels, ImageGeometry shape, Tensor y)
            { Check(nameof(ToChannelsLast), pixels, y); cpu.ToChannelsLast(pixels, shape, y); }

            public override void Patchify(Tensor pixels, int batch, int imageSize, int patchSize, Tensor columns)
            { Check(nameof(Patchify), pixels, columns); cpu.Patchify(pixels, batch, imageSize, patchSize, columns); }

            public override void AssembleTokens(Tensor first, Tensor rest, Tensor positional, int batch, int width, Tensor output)
            { Check(nameof(AssembleTokens), first, rest, positional, output); cpu.AssembleTokens(first, rest, positional, batch, width, output); }

            public override void EmbedTokens(Tensor table, ReadOnlySpan<int> ids, int length, Tensor positional, int width, Tensor output)
            { Check(nameof(EmbedTokens), table, positional, output); cpu.EmbedTokens(table, ids, length, positional, width, output); }

            public override void GatherRows(Tensor x, ReadOnlySpan<int> rows, int width, Tensor output)
            { Check(nameof(GatherRows), x, output); cpu.GatherRows(x, rows, width, output); }

            public override void Dispose() => cpu.Dispose();
        }
    }
}
