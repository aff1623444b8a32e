// Zero-shot classification of one image with ManagedClip, as an app would embed it.
// usage: ZeroShot MODEL IMAGE LABEL [LABEL...]      e.g. ZeroShot clip-vit-base-patch32/ cat.jpg cat dog
// Prints "probability<TAB>label" per label, most probable first: the numbers `managedclip classify` gives.
using ManagedClip;
using ManagedClip.ZeroShot;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: ZeroShot MODEL IMAGE LABEL [LABEL...]");
    return 2;
}
try
{
    using var model = ClipModel.Load(args[0]);
    string[] labels = args[2..];

    // Each label through the project's default prompt templates, ensembled into one unit vector per class.
    var classifier = ZeroShotClassifier.Create(model, labels, PromptTemplates.Default);
    var image = model.EncodeImageFiles([args[1]]).Single();
    if (image.Error is not null) throw image.Error;

    foreach (var prediction in classifier.Classify(image.Features!, top: labels.Length))
        Console.WriteLine($"{prediction.Probability:0.000000}\t{prediction.Label}");
    return 0;
}
catch (ClipException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
