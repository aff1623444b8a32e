namespace ManagedClip;

/// <summary>Base of every error the library reports on purpose: bad files, bad tensors, bad input. The CLI prints its message as one <c>error:</c> line.</summary>
public class ClipException : Exception
{
    /// <summary>An exception with this message.</summary>
    public ClipException(string message) : base(message) { }
    /// <summary>An exception with this message, caused by <paramref name="inner"/>.</summary>
    public ClipException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A checkpoint file or one of its tensors is unreadable, malformed, missing or mis-shaped. The message names the file and the tensor.</summary>
public sealed class CheckpointException : ClipException
{
    /// <summary>An exception with this message.</summary>
    public CheckpointException(string message) : base(message) { }
    /// <summary>An exception with this message, caused by <paramref name="inner"/>.</summary>
    public CheckpointException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>The tokenizer's vocabulary is missing or malformed. The message names what is missing and where it was looked for.</summary>
public sealed class VocabularyException : ClipException
{
    /// <summary>An exception with this message.</summary>
    public VocabularyException(string message) : base(message) { }
    /// <summary>An exception with this message, caused by <paramref name="inner"/>.</summary>
    public VocabularyException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>An image (or preprocessed tensor) could not be read. The message names the file.</summary>
public sealed class ImageInputException : ClipException
{
    /// <summary>An exception with this message.</summary>
    public ImageInputException(string message) : base(message) { }
    /// <summary>An exception with this message, caused by <paramref name="inner"/>.</summary>
    public ImageInputException(string message, Exception inner) : base(message, inner) { }
}
