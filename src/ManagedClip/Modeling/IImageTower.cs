namespace ManagedClip.Modeling;

/// <summary>An image encoder: ViT or ModifiedResNet.</summary>
internal interface IImageTower
{
    int ImageSize { get; }
    int EmbedDim { get; }

    /// <summary>pixels [batch, 3, R, R], normalized → features [batch, E], not normalized; on at most <paramref name="threads"/> host threads.</summary>
    void Forward(ReadOnlySpan<float> pixels, int batch, Span<float> features, int threads);
}
