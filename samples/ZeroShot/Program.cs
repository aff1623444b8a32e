// Zero-shot classification of one image with ManagedClip, as an app would embed it.
// usage: ZeroShot MODEL IMAGE LABEL [LABEL...]      e.g. ZeroShot clip-vit-base-patch32/ cat.jpg cat dog
using System.Numerics.Tensors;
using ManagedClip;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: ZeroShot MODEL IMAGE LABEL [LABEL...]");
    return 2;
}
try
{
    using var model = ClipModel.Load(args[0]);
    var labels = args[2..];

    // One prompt per label, L2-normalized; the image likewise; logits = exp(logit_scale) · cosine; softmax.
    var classes = model.EncodeTexts(labels.Select(label => $"a photo of a {label}.").ToArray()).Select(t => ClipModel.Normalize(t)).ToArray();
    var result = model.EncodeImageFiles([args[1]]).Single();
    if (result.Error is not null) throw result.Error;
    var image = ClipModel.Normalize(result.Features!);
    float scale = MathF.Exp(model.LogitScale);
    var logits = classes.Select(c => scale * TensorPrimitives.Dot(image, c)).ToArray();
    var probabilities = new float[logits.Length];
    TensorPrimitives.SoftMax(logits, probabilities);

    foreach (var (label, p) in labels.Zip(probabilities).OrderByDescending(x => x.Second))
        Console.WriteLine($"{p:0.000000}\t{label}");
    return 0;
}
catch (ClipException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
