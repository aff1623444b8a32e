using ManagedClip.Checkpoints;
using ManagedClip.Kernels;

namespace ManagedClip.Modeling;

/// <summary>
/// The anti-aliased bottleneck of the ModifiedResNet (<c>clip/model.py Bottleneck</c>): every convolution has stride 1, and a stride s > 1 is
/// taken by an s×s average pool — before conv3 on the main path, and before the 1×1 convolution of the shortcut.
/// <code>
/// main     = bn3(conv3(avgpool_s(relu(bn2(conv2(relu(bn1(conv1(x)))))))))
/// shortcut = bn(conv(avgpool_s(x)))   (first block of a stage: s > 1 or Cin ≠ 4·planes)   else   x
/// out      = relu(main + shortcut)
/// </code>
/// </summary>
internal sealed class Bottleneck
{
    public const int Expansion = 4;

    readonly ConvBatchNorm _conv1;        // 1×1  Cin → planes
    readonly ConvBatchNorm _conv2;        // 3×3  planes → planes, pad 1
    readonly ConvBatchNorm _conv3;        // 1×1  planes → 4·planes
    readonly ConvBatchNorm? _downsample;  // 1×1  Cin → 4·planes ("downsample.0" conv, "downsample.1" BN; the pool "-1" has no weights)

    public int InChannels { get; }
    public int Planes { get; }
    public int OutChannels => Expansion * Planes;
    public int Stride { get; }

    public Bottleneck(Checkpoint checkpoint, string prefix, int inChannels, int planes, int stride)
    {
        InChannels = inChannels; Planes = planes; Stride = stride;
        _conv1 = ConvBatchNorm.Load(checkpoint, $"{prefix}.conv1.weight", $"{prefix}.bn1", inChannels, planes, 1);
        _conv2 = ConvBatchNorm.Load(checkpoint, $"{prefix}.conv2.weight", $"{prefix}.bn2", planes, planes, 3);
        _conv3 = ConvBatchNorm.Load(checkpoint, $"{prefix}.conv3.weight", $"{prefix}.bn3", planes, Expansion * planes, 1);
        if (stride > 1 || inChannels != Expansion * planes)
            _downsample = ConvBatchNorm.Load(checkpoint, $"{prefix}.downsample.0.weight", $"{prefix}.downsample.1", inChannels, Expansion * planes, 1);
    }

    public bool HasDownsample => _downsample is not null;

    public int OutputSize(int size) => Stride > 1 ? size / Stride : size;

    /// <summary>Largest per-image intermediate, in floats, for an input of <paramref name="height"/>×<paramref name="width"/>.</summary>
    public long LargestActivation(int height, int width) =>
        Math.Max((long)height * width * Math.Max(InChannels, Planes), (long)OutputSize(height) * OutputSize(width) * OutChannels);

    public int MinimumScratch => _conv2.MinimumScratch;

    /// <summary>Scratch floats conv2 uses for one image in one pass.</summary>
    public long ScratchFor(int height, int width) => _conv2.ScratchFor(height, width);

    /// <summary>
    /// x [B, H, W, Cin] → y [B, H/s, W/s, 4·planes]. Uses <see cref="ResNetWorkspace.First"/> and <see cref="ResNetWorkspace.Second"/>
    /// as temporaries; x and y are other buffers.
    /// </summary>
    public void Forward(ReadOnlySpan<float> x, int batch, int height, int width, Span<float> y, ResNetWorkspace workspace)
    {
        var kernels = workspace.Kernels;
        int planes = Planes, outHeight = OutputSize(height), outWidth = OutputSize(width);
        int pixels = batch * height * width, outPixels = batch * outHeight * outWidth;
        Span<float> first = workspace.First, second = workspace.Second, scratch = workspace.Columns;
        Span<float> output = y[..(outPixels * OutChannels)];

        _conv1.Forward(x, batch, height, width, first, scratch, kernels, Activation.Relu);             // [B, H, W, planes]
        _conv2.Forward(first, batch, height, width, second, scratch, kernels, Activation.Relu);        // [B, H, W, planes]
        Span<float> main = second[..(pixels * planes)];
        if (Stride > 1)
        {
            Pooling.AveragePool(main, new ImageGeometry(batch, height, width, planes), Stride, first, kernels);           // [B, H/s, W/s, planes]
            main = first[..(outPixels * planes)];
        }

        // The shortcut is added in conv3's epilogue before its ReLU: y = relu(bn3(conv3(main)) + shortcut), one pass over y.
        if (_downsample is null)
        {
            // identity: Cin = 4·planes, s = 1; x itself is the residual, no copy
            _conv3.Forward(main, batch, outHeight, outWidth, output, scratch, kernels, Activation.Relu, residual: x[..output.Length]);
            return;
        }
        if (Stride > 1)
        {
            Span<float> pooled = second[..(outPixels * InChannels)];                                     // main no longer lives here
            Pooling.AveragePool(x, new ImageGeometry(batch, height, width, InChannels), Stride, pooled, kernels);           // [B, H/s, W/s, Cin]
            _downsample.Forward(pooled, batch, outHeight, outWidth, output, scratch, kernels);           // [B, H/s, W/s, 4·planes]
        }
        else
        {
            _downsample.Forward(x, batch, height, width, output, scratch, kernels);                      // [B, H, W, 4·planes]
        }
        _conv3.Forward(main, batch, outHeight, outWidth, output, scratch, kernels, Activation.Relu, residual: output); // y = relu(bn3(conv3(main)) + y)
    }
}
