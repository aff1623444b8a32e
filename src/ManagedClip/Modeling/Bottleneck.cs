using ManagedClip.Backends;
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

    readonly ConvolutionWeights _conv1;        // 1×1  Cin → planes
    readonly ConvolutionWeights _conv2;        // 3×3  planes → planes, pad 1
    readonly ConvolutionWeights _conv3;        // 1×1  planes → 4·planes
    readonly ConvolutionWeights? _downsample;  // 1×1  Cin → 4·planes ("downsample.0" conv, "downsample.1" BN; the pool "-1" has no weights)

    public int InChannels { get; }
    public int Planes { get; }
    public int OutChannels => Expansion * Planes;
    public int Stride { get; }

    public Bottleneck(WeightLoader weights, string prefix, int inChannels, int planes, int stride)
    {
        InChannels = inChannels; Planes = planes; Stride = stride;
        _conv1 = weights.ConvBatchNorm($"{prefix}.conv1.weight", $"{prefix}.bn1", inChannels, planes, 1);
        _conv2 = weights.ConvBatchNorm($"{prefix}.conv2.weight", $"{prefix}.bn2", planes, planes, 3);
        _conv3 = weights.ConvBatchNorm($"{prefix}.conv3.weight", $"{prefix}.bn3", planes, Expansion * planes, 1);
        if (stride > 1 || inChannels != Expansion * planes)
            _downsample = weights.ConvBatchNorm($"{prefix}.downsample.0.weight", $"{prefix}.downsample.1", inChannels, Expansion * planes, 1);
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
    /// as temporaries; x and y are other tensors.
    /// </summary>
    public void Forward(Operators ops, Tensor x, int batch, int height, int width, Tensor y, ResNetWorkspace workspace)
    {
        int planes = Planes, outHeight = OutputSize(height), outWidth = OutputSize(width);
        int pixels = batch * height * width, outPixels = batch * outHeight * outWidth;
        var shape = new ImageGeometry(batch, height, width, InChannels);
        Tensor first = workspace.First, second = workspace.Second, scratch = workspace.Columns;
        Tensor output = y[..(outPixels * OutChannels)];

        ops.Convolution(_conv1, x, shape, first, scratch, Activation.Relu);                                   // [B, H, W, planes]
        ops.Convolution(_conv2, first, shape.With(height, width, planes), second, scratch, Activation.Relu);  // [B, H, W, planes]
        Tensor main = second[..(pixels * planes)];
        if (Stride > 1)
        {
            ops.AveragePool(main, shape.With(height, width, planes), Stride, first);                          // [B, H/s, W/s, planes]
            main = first[..(outPixels * planes)];
        }
        var outShape = shape.With(outHeight, outWidth, planes);

        // The shortcut is added in conv3's epilogue before its ReLU: y = relu(bn3(conv3(main)) + shortcut), one pass over y.
        if (_downsample is null)
        {
            // identity: Cin = 4·planes, s = 1; x itself is the residual, no copy
            ops.Convolution(_conv3, main, outShape, output, scratch, Activation.Relu, residual: x[..output.Length]);
            return;
        }
        if (Stride > 1)
        {
            Tensor pooled = second[..(outPixels * InChannels)];                                                // main no longer lives here
            ops.AveragePool(x, shape, Stride, pooled);                                                         // [B, H/s, W/s, Cin]
            ops.Convolution(_downsample, pooled, shape.With(outHeight, outWidth, InChannels), output, scratch); // [B, H/s, W/s, 4·planes]
        }
        else
        {
            ops.Convolution(_downsample, x, shape, output, scratch);                                           // [B, H, W, 4·planes]
        }
        ops.Convolution(_conv3, main, outShape, output, scratch, Activation.Relu, residual: output);            // y = relu(bn3(conv3(main)) + y)
    }
}
