using ManagedClip.Imaging;

namespace ManagedClip.Tests.Imaging;

public class DecodePipelineTests
{
    [Theory]
    [InlineData(0, 1, 1)]
    [InlineData(1, 2, 4)]
    [InlineData(37, 1, 3)]
    [InlineData(37, 2, 5)]
    [InlineData(100, 4, 6)]
    public void HandsBackEveryItemInInputOrder(int count, int workers, int window)
    {
        var budget = new ThreadBudget(workers);
        using var pipeline = new DecodePipeline<int>(count, workers, window, budget, i =>
        {
            Thread.Sleep((i * 7919) % 3); // uneven work, so workers finish out of order
            return i * i;
        });
        for (int i = 0; i < count; i++) Assert.Equal(i * i, pipeline.Take());
        Assert.Throws<InvalidOperationException>(() => pipeline.Take());
    }

    [Fact]
    public void HoldsAtMostTheWindowAndRunsAtMostTheBudget()
    {
        const int count = 60, workers = 3, window = 4;
        int running = 0, maxRunning = 0, produced = 0, taken = 0, maxAhead = 0;
        var budget = new ThreadBudget(2); // fewer threads than workers: the budget, not the worker count, bounds the work
        using var pipeline = new DecodePipeline<int>(count, workers, window, budget, i =>
        {
            int now = Interlocked.Increment(ref running);
            InterlockedMax(ref maxRunning, now);
            Thread.Sleep(1);
            Interlocked.Decrement(ref running);
            InterlockedMax(ref maxAhead, Interlocked.Increment(ref produced) - Volatile.Read(ref taken));
            return i;
        });
        for (int i = 0; i < count; i++)
        {
            if (i % 10 == 0) Thread.Sleep(20); // a slow consumer: the workers must wait, not run ahead
            // Counted before the item is taken, so that a worker freed by this Take never sees a count one behind.
            Interlocked.Increment(ref taken);
            Assert.Equal(i, pipeline.Take());
        }
        Assert.InRange(maxRunning, 1, 2);
        Assert.InRange(maxAhead, 1, window);
    }

    [Fact]
    public void AnItemsExceptionIsRethrownAtThatItemAndTheOthersStillCome()
    {
        using var pipeline = new DecodePipeline<int>(5, 2, 3, new ThreadBudget(2), i => i == 2 ? throw new FormatException("item 2") : i);
        Assert.Equal(0, pipeline.Take());
        Assert.Equal(1, pipeline.Take());
        Assert.Equal("item 2", Assert.Throws<FormatException>(() => pipeline.Take()).Message);
        Assert.Equal(3, pipeline.Take());
        Assert.Equal(4, pipeline.Take());
    }

    [Fact]
    public void DisposingEarlyStopsTheWorkers()
    {
        int started = 0;
        var pipeline = new DecodePipeline<int>(1000, 2, 4, new ThreadBudget(2), i => { Interlocked.Increment(ref started); return i; });
        Assert.Equal(0, pipeline.Take());
        pipeline.Dispose(); // joins the workers: returns only once they stopped
        int after = Volatile.Read(ref started);
        Thread.Sleep(50);
        Assert.Equal(after, Volatile.Read(ref started));
        Assert.InRange(after, 1, 1 + 4);
    }

    [Fact]
    public void AWaitingForwardPassGetsTheThreadsBeforeDecodersTakeMore()
    {
        var budget = new ThreadBudget(2);
        budget.AcquireForDecode();
        budget.AcquireForDecode();
        int forwardThreads = 0;
        var forward = new Thread(() => forwardThreads = budget.AcquireForForward());
        forward.Start();
        Assert.True(SpinWait.SpinUntil(() => budget.ForwardsWaiting == 1, 5000)); // the forward pass is waiting now
        var decoder = new Thread(budget.AcquireForDecode);
        decoder.Start();
        budget.Release(1); // one decode finished: the forward pass, waiting first, takes the thread
        Assert.True(forward.Join(5000));
        Assert.Equal(1, forwardThreads);
        Assert.False(decoder.Join(100)); // nothing free: the second decoder still waits
        budget.Release(1);
        Assert.True(decoder.Join(5000));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while (value > (current = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current) { }
    }
}
