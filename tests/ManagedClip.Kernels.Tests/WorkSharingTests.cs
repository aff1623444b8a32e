namespace ManagedClip.Kernels.Tests;

/// <summary>
/// A finished member of a <see cref="WorkSharing"/> team runs tasks of the GEMMs another member still has in flight; the
/// products are bit-identical to the same calls without a team, and a member that fails does not leave the others waiting.
/// </summary>
public class WorkSharingTests
{
    [Fact]
    public void FinishedMemberHelpsWithAnotherMembersGemmsWithoutChangingABit()
    {
        const int m = 300, k = 768, n = 768, calls = 12;
        var x = TestData.Random(m * k, 1);
        var packed = PackedMatrix.FromRowMajor(TestData.Random(k * n, 2), k, n);
        var bias = TestData.Random(n, 3);
        var alone = new float[m * n];
        var epilogue = Epilogue.Of(bias, Activation.QuickGelu);
        Gemm.Multiply(new ReadOnlyMatrixView(x, m, k), packed, new MatrixView(alone, m, n), epilogue, KernelContext.SingleThread);

        var team = new WorkSharing(2);
        var results = Enumerable.Range(0, calls).Select(_ => new float[m * n]).ToArray();
        using var helperWaiting = new ManualResetEventSlim();
        var helper = new Thread(() =>
        {
            team.Finished();           // member 0 has nothing of its own to do
            helperWaiting.Set();
            team.HelpUntilAllFinished();
        });
        helper.Start();
        helperWaiting.Wait();
        var member = KernelContext.SingleThread.AsMember(team, 1);
        foreach (var y in results)
            Gemm.Multiply(new ReadOnlyMatrixView(x, m, k), packed, new MatrixView(y, m, n), Epilogue.Of(bias, Activation.QuickGelu), member);
        team.Finished();
        Assert.True(helper.Join(TimeSpan.FromSeconds(30)), "the helper did not stop once every member had finished");

        foreach (var y in results) Assert.Equal(alone, y);
        Assert.True(team.TimesHelped > 0, "the finished member never ran a task of the other's GEMMs");
    }

    [Fact]
    public void GemmOutsideATeamIsNotShared()
    {
        var team = new WorkSharing(1);
        var y = new float[64 * 64];
        Gemm.Multiply(new ReadOnlyMatrixView(TestData.Random(64 * 512, 4), 64, 512), PackedMatrix.FromRowMajor(TestData.Random(512 * 64, 5), 512, 64),
            new MatrixView(y, 64, 64), default, KernelContext.SingleThread);   // a context outside the team
        team.Finished();
        team.HelpUntilAllFinished();   // returns at once: every member has finished
        Assert.Equal(0, team.TimesHelped);
        Assert.Throws<ArgumentOutOfRangeException>(() => KernelContext.SingleThread.AsMember(team, 1));
    }
}
