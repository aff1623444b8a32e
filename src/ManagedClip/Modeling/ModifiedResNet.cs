using ManagedClip.Backends;
using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// The ModifiedResNet image tower (<c>clip/model.py ModifiedResNet</c>): a 3-convolution stem with a 2×2 average pool, four stages of anti-aliased
/// bottlenecks, and an attention pool. Activations are channels-last, [B, H, W, C], end to end (see <see cref="Convolution"/>);
/// every BatchNorm is folded into its convolution at load.
/// <code>
/// RN50 at 224:  [3, 224, 224] → stem 112²×32 → 112²×32 → 112²×64 → pool 56²×64
///               → layer1 56²×256 → layer2 28²×512 → layer3 14²×1024 → layer4 7²×2048 → attnpool [1024]
/// </code>
/// </summary>
internal sealed class ModifiedResNet : IImageTower
{
    /// <summary>Most floats of convolution scratch (8 MiB, im2col rows or Winograd tiles): enough that each GEMM is large, few enough to stay small.</summary>
    const int ColumnBudget = 1 << 21;

    readonly ModifiedResNetConfig _config;
    readonly ComputeBackend _backend;
    readonly ConvolutionWeights _conv1, _conv2, _conv3;   // stem: 3 → W/2 (stride 2), W/2 → W/2, W/2 → W; all 3×3 pad 1
    readonly Bottleneck[] _blocks;                   // layer1..layer4, in order
    readonly AttentionPool2d _attentionPool;         // [G², 32W] → [E]
    readonly long _largestActivation;                // floats per image, over every intermediate
    readonly int _minimumScratch;                    // scratch floats for one output row (im2col) or tile (Winograd) of the widest k×k convolution
    readonly long _largestScratch;                   // floats for a whole image of the k×k convolution needing most: im2col rows or Winograd tiles
    readonly long _activationBudget;

    public int ImageSize => _config.ImageSize;
    public int EmbedDim => _attentionPool.OutputDim;
    internal IReadOnlyList<Bottleneck> Blocks => _blocks;

    public ModifiedResNet(WeightLoader weights, ClipConfig config, long? activationBudget = null)
    {
        _activationBudget = activationBudget ?? weights.Backend.ActivationBudget;   // floats per activation buffer: a larger batch runs in sub-batches that fit
        _backend = weights.Backend;
        var v = _config = (ModifiedResNetConfig)config.Vision;
        int width = v.Width, size = v.ImageSize;
        _conv1 = weights.ConvBatchNorm("visual.conv1.weight", "visual.bn1", 3, width / 2, 3, stride: 2);
        _conv2 = weights.ConvBatchNorm("visual.conv2.weight", "visual.bn2", width / 2, width / 2, 3);
        _conv3 = weights.ConvBatchNorm("visual.conv3.weight", "visual.bn3", width / 2, width, 3);

        int stem = _conv1.OutputSize(size);
        _largestActivation = Math.Max(3L * size * size, (long)stem * stem * width);
        _minimumScratch = Math.Max(_conv2.MinimumScratch, _conv3.MinimumScratch);
        _largestScratch = new[] { _conv1.ScratchFor(size, size), _conv2.ScratchFor(stem, stem), _conv3.ScratchFor(stem, stem) }.Max();

        // Stage k has planes W·2^(k−1); its first block takes the stride (1 for layer1, else 2) and the channel change.
        var blocks = new List<Bottleneck>();
        int inChannels = width, spatial = stem / 2;
        for (int stage = 0; stage < 4; stage++)
        {
            int planes = width << stage;
            // OpenAI's _make_layer always builds block 0, so a stage without one is a missing tensor, reported by name.
            for (int b = 0; b < Math.Max(1, v.Blocks[stage]); b++)
            {
                var block = new Bottleneck(weights, $"visual.layer{stage + 1}.{b}", inChannels, planes, b == 0 && stage > 0 ? 2 : 1);
                _largestActivation = Math.Max(_largestActivation, block.LargestActivation(spatial, spatial));
                _minimumScratch = Math.Max(_minimumScratch, block.MinimumScratch);
                _largestScratch = Math.Max(_largestScratch, block.ScratchFor(spatial, spatial));
                spatial = block.OutputSize(spatial);
                inChannels = block.OutChannels;
                blocks.Add(block);
            }
        }
        _blocks = blocks.ToArray();
        if (spatial != v.GridSize)
            throw new CheckpointException($"{weights.Checkpoint.SourcePath}: a {size}px image reaches the attention pool as {spatial}×{spatial}, but 'visual.attnpool.positional_embedding' is for {v.GridSize}×{v.GridSize}");
        _attentionPool = new AttentionPool2d(weights, "visual.attnpool", v.GridSize, inChannels, v.Heads, config.EmbedDim);
    }

    /// <summary>pixels [batch, 3, R, R] → features [batch, E] (not normalized).</summary>
    public void Forward(ReadOnlySpan<float> pixels, int batch, Span<float> features, int threads) =>
        BatchParts.RunImages(_backend, threads, pixels, 3 * ImageSize * ImageSize, batch, features, EmbedDim, Forward);

    void Forward(Operators ops, ReadOnlySpan<float> pixels, int batch, Span<float> features)
    {
        int size = ImageSize, imageLength = 3 * size * size;
        int chunk = (int)Math.Clamp(_activationBudget / _largestActivation, 1, Math.Max(1, batch));
        int columns = (int)Math.Clamp(chunk * _largestScratch, _minimumScratch, Math.Max(_minimumScratch, ColumnBudget));
        var workspace = new ResNetWorkspace(ops, chunk * _largestActivation, columns, _attentionPool.ScratchLength(chunk), chunk * EmbedDim);
        for (int start = 0; start < batch; start += chunk)
        {
            int count = Math.Min(chunk, batch - start);
            // The pixels arrive in First, free until conv2 writes it.   [B, 3, R, R]
            Tensor input = workspace.First[..(count * imageLength)];
            ops.Upload(pixels.Slice(start * imageLength, count * imageLength), input);
            ForwardChunk(ops, input, count, workspace);
            ops.Download(workspace.Features[..(count * EmbedDim)], features.Slice(start * EmbedDim, count * EmbedDim));
        }
    }

    void ForwardChunk(Operators ops, Tensor pixels, int batch, ResNetWorkspace workspace)
    {
        int size = ImageSize;
        Tensor x = workspace.Input, y = workspace.Output, scratch = workspace.Columns;

        // Stem.   [B, 3, R, R] → [B, R, R, 3] → [B, R/2, R/2, W/2] → [B, R/2, R/2, W/2] → [B, R/2, R/2, W] → [B, R/4, R/4, W]
        var shape = new ImageGeometry(batch, size, size, 3);
        ops.ToChannelsLast(pixels, shape, x);
        int h = _conv1.OutputSize(size);
        ops.Convolution(_conv1, x, shape, y, scratch, Activation.Relu);
        ops.Convolution(_conv2, y, shape.With(h, h, _conv1.OutChannels), workspace.First, scratch, Activation.Relu);
        ops.Convolution(_conv3, workspace.First, shape.With(h, h, _conv2.OutChannels), y, scratch, Activation.Relu);
        ops.AveragePool(y, shape.With(h, h, _conv3.OutChannels), 2, x);
        h /= 2;

        // layer1..layer4.   [B, R/4, R/4, W] → … → [B, G, G, 32W]
        foreach (var block in _blocks)
        {
            block.Forward(ops, x, batch, h, h, y, workspace);
            (x, y) = (y, x);
            h = block.OutputSize(h);
        }

        _attentionPool.Forward(ops, x, batch, workspace.Features, workspace.Pool);            // [B, E]
    }
}

/// <summary>
/// Scratch for one ModifiedResNet call, rented once for its sub-batch: two activation tensors the blocks ping-pong between,
/// two temporaries inside a block, im2col rows, the attention pool's tokens and the features.
/// </summary>
internal sealed class ResNetWorkspace(Operators ops, long activation, int columns, long pool, int features)
{
    public Tensor Input { get; } = ops.Rent(checked((int)activation));
    public Tensor Output { get; } = ops.Rent(checked((int)activation));
    public Tensor First { get; } = ops.Rent(checked((int)activation));
    public Tensor Second { get; } = ops.Rent(checked((int)activation));
    public Tensor Columns { get; } = ops.Rent(columns);
    public Tensor Pool { get; } = ops.Rent(checked((int)pool));
    public Tensor Features { get; } = ops.Rent(features);
}
