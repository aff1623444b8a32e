namespace ManagedClip.Kernels;

/// <summary>
/// A row-major matrix in a span: <see cref="Rows"/> rows of <see cref="Columns"/> floats, row r starting at r·<see cref="Stride"/>
/// (a stride past the columns reads one head out of fused QKV rows, or writes one into its channel slot).
/// </summary>
public readonly ref struct MatrixView
{
    /// <summary>The matrix's floats: row r at r·<see cref="Stride"/>, <see cref="Columns"/> long.</summary>
    public Span<float> Data { get; }
    /// <summary>Number of rows.</summary>
    public int Rows { get; }
    /// <summary>Floats per row.</summary>
    public int Columns { get; }
    /// <summary>Floats from the start of one row to the start of the next (at least <see cref="Columns"/>).</summary>
    public int Stride { get; }

    /// <summary>The span must hold every row: (rows − 1)·stride + columns floats (none when rows is 0).</summary>
    public MatrixView(Span<float> data, int rows, int columns, int stride = -1, string name = "matrix")
    {
        if (stride == -1) stride = columns;
        ReadOnlyMatrixView.Check(data.Length, rows, columns, stride, name);
        Data = data; Rows = rows; Columns = columns; Stride = stride;
    }

    /// <summary>The same rows, read-only.</summary>
    public static implicit operator ReadOnlyMatrixView(MatrixView m) => new(m.Data, m.Rows, m.Columns, m.Stride);

    /// <summary>The shape, "[rows, columns]", with the stride when it is not the columns.</summary>
    public override string ToString() => ReadOnlyMatrixView.Describe(Rows, Columns, Stride);
}

/// <summary>The read-only form of <see cref="MatrixView"/>.</summary>
public readonly ref struct ReadOnlyMatrixView
{
    /// <summary>The matrix's floats: row r at r·<see cref="Stride"/>, <see cref="Columns"/> long.</summary>
    public ReadOnlySpan<float> Data { get; }
    /// <summary>Number of rows.</summary>
    public int Rows { get; }
    /// <summary>Floats per row.</summary>
    public int Columns { get; }
    /// <summary>Floats from the start of one row to the start of the next (at least <see cref="Columns"/>).</summary>
    public int Stride { get; }

    /// <summary>The span must hold every row: (rows − 1)·stride + columns floats (none when rows is 0).</summary>
    /// <param name="data">The floats, row-major.</param>
    /// <param name="rows">Rows, at least 0.</param>
    /// <param name="columns">Floats per row, at least 0.</param>
    /// <param name="stride">Floats from one row's start to the next; -1 means <paramref name="columns"/>.</param>
    /// <param name="name">The operand's name in error messages.</param>
    /// <exception cref="ArgumentOutOfRangeException">Rows or columns are negative, or the stride is shorter than a row.</exception>
    /// <exception cref="ArgumentException">The span is shorter than the rows need.</exception>
    public ReadOnlyMatrixView(ReadOnlySpan<float> data, int rows, int columns, int stride = -1, string name = "matrix")
    {
        if (stride == -1) stride = columns;
        Check(data.Length, rows, columns, stride, name);
        Data = data; Rows = rows; Columns = columns; Stride = stride;
    }

    /// <summary>Rows and columns non-negative, the stride at least the columns, and the span long enough (in 64 bits, so nothing wraps).</summary>
    internal static void Check(int length, int rows, int columns, int stride, string name)
    {
        if (rows < 0) throw new ArgumentOutOfRangeException(name, rows, $"{name}: rows must be non-negative.");
        if (columns < 0) throw new ArgumentOutOfRangeException(name, columns, $"{name}: columns must be non-negative.");
        if (stride < columns) throw new ArgumentOutOfRangeException(name, stride, $"{name}: stride {stride} is shorter than a row of {columns}.");
        long required = rows == 0 ? 0 : (long)(rows - 1) * stride + columns;
        if (length < required)
            throw new ArgumentException($"{name} has {length} elements but {Describe(rows, columns, stride)} needs at least {required}.", name);
    }

    internal static string Describe(int rows, int columns, int stride) =>
        stride == columns ? $"[{rows}, {columns}]" : $"[{rows}, {columns}] with row stride {stride}";

    /// <summary>The shape, "[rows, columns]", with the stride when it is not the columns.</summary>
    public override string ToString() => Describe(Rows, Columns, Stride);
}

/// <summary>
/// What a product does on its way out, per output element: y = act(product + bias + residual). The bias is per column (empty:
/// none); the residual is laid out as y (empty: none) and may be y itself, the residual add of a transformer block
/// (y ← y + x·W + b) or of a bottleneck (y ← relu(conv(x) + b + y)), but must not otherwise overlap y.
/// </summary>
public readonly ref struct Epilogue
{
    /// <summary>Added to every row, one value per output column; empty for none.</summary>
    public ReadOnlySpan<float> Bias { get; }
    /// <summary>Applied last, after the bias and the residual.</summary>
    public Activation Activation { get; }
    /// <summary>Added element by element, laid out as the output; empty for none.</summary>
    public ReadOnlySpan<float> Residual { get; }

    /// <summary>An epilogue y = act(product + bias + residual); the kernel checks the lengths against its output.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The activation is not a member of <see cref="ManagedClip.Kernels.Activation"/>.</exception>
    public Epilogue(ReadOnlySpan<float> bias, Activation activation = Activation.None, ReadOnlySpan<float> residual = default)
    {
        Activations.CheckActivation(activation);
        Bias = bias; Activation = activation; Residual = residual;
    }

    /// <summary>y = act(product + bias): no residual.</summary>
    public static Epilogue Of(ReadOnlySpan<float> bias, Activation activation = Activation.None) => new(bias, activation);

    /// <summary>Bias and ReLU or nothing, no residual: all that the direct and Winograd convolutions fuse into their stores.</summary>
    internal bool IsBiasAndRelu => Activation is Activation.None or Activation.Relu && Residual.IsEmpty;

    /// <summary>The argument checks of a kernel that only fuses bias and ReLU (<see cref="IsBiasAndRelu"/>), naming what else was asked of <paramref name="kernel"/>.</summary>
    internal void CheckBiasAndRelu(int outChannels, string kernel)
    {
        Convolution.Check(Activation is Activation.None or Activation.Relu, $"{kernel} applies ReLU or nothing, not {Activation}");
        Convolution.Check(Residual.IsEmpty, $"{kernel} does not add a residual");
        Convolution.Check(Bias.IsEmpty || Bias.Length >= outChannels, $"bias has {Bias.Length} values, expected {outChannels}");
    }
}

/// <summary>A batch of channels-last (NHWC) images: [<see cref="Batch"/>, <see cref="Height"/>, <see cref="Width"/>, <see cref="Channels"/>].</summary>
public readonly record struct ImageGeometry(int Batch, int Height, int Width, int Channels)
{
    /// <summary>Pixels of the whole batch, B·H·W.</summary>
    public long Pixels => (long)Batch * Height * Width;

    /// <summary>Floats of the whole batch, B·H·W·C.</summary>
    public long Length => Pixels * Channels;

    /// <summary>The same batch with <paramref name="height"/>×<paramref name="width"/> pixels of <paramref name="channels"/> channels.</summary>
    public ImageGeometry With(int height, int width, int channels) => new(Batch, height, width, channels);

    internal void Check(string name)
    {
        if (Batch < 0 || Height < 1 || Width < 1 || Channels < 1)
            throw new ArgumentException($"{name}: batch must be non-negative and height, width and channels positive (got {this}).", name);
    }

    /// <summary>The NHWC shape, "[batch, height, width, channels]".</summary>
    public override string ToString() => $"[{Batch}, {Height}, {Width}, {Channels}]";
}

/// <summary>A square convolution window: <see cref="Kernel"/>×<see cref="Kernel"/>, stride <see cref="Stride"/>, zero padding <see cref="Padding"/>.</summary>
public readonly record struct ConvolutionGeometry(int Kernel, int Stride = 1, int Padding = 0)
{
    /// <summary>Output side: ⌊(size + 2·padding − kernel) / stride⌋ + 1.</summary>
    public int OutputSize(int size)
    {
        if (size < 1 || Kernel < 1 || Stride < 1 || Padding < 0)
            throw new ArgumentException($"size, kernel and stride must be positive and padding non-negative (size {size}, {this})");
        if (size + 2 * Padding < Kernel)
            throw new ArgumentException($"a {Kernel}×{Kernel} kernel does not fit an input of {size} with padding {Padding}");
        return (size + 2 * Padding - Kernel) / Stride + 1;
    }

    /// <summary>The output batch of this window over <paramref name="input"/>, with <paramref name="outChannels"/> channels.</summary>
    public ImageGeometry Output(ImageGeometry input, int outChannels) => input.With(OutputSize(input.Height), OutputSize(input.Width), outChannels);

    /// <summary>1×1, stride 1, no padding: the activations already are a GEMM operand.</summary>
    public bool IsPointwise => Kernel == 1 && Stride == 1 && Padding == 0;

    /// <summary>The window, e.g. "3×3 stride 1 padding 1".</summary>
    public override string ToString() => $"{Kernel}×{Kernel} stride {Stride} padding {Padding}";
}
